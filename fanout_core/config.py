"""FanoutConfig: every setting the library reads from the environment, checked once."""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from fanout_core.errors import ConfigError

# API Gateway closes every WebSocket after 2 hours; a row lives a little longer so a
# slow clock never expires a connection that API Gateway still holds open.
DEFAULT_TTL_SECONDS = 2 * 60 * 60 + 5 * 60
DEFAULT_TABLE = "fanout"
DEFAULT_REGION = "us-east-1"
DEFAULT_STRATEGY = "gsi_query"
DEFAULT_CONCURRENCY = 32
DEFAULT_SEGMENTS = 4
DEFAULT_MAX_ATTEMPTS = 5
_TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
_RATE = re.compile(r"\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)\s*")
DEFAULT_POLICY = "open"
DEFAULT_HISTORY_MAX = 1000
DEFAULT_DEDUP_SECONDS = 300
# A $connect answers within API Gateway's 29-second integration timeout: until it has, a post
# to its connection answers 410, which must not delete the rows it just wrote.
DEFAULT_CONNECTING_SECONDS = 30
# Rooms one connection may be in: a ping refreshes each membership, so this bounds its writes.
DEFAULT_MAX_ROOMS = 100
# An answer to its caller (history, presence) takes a token per this many bytes it posts past
# the first: API Gateway bills a message per 32 KB too.
ANSWER_BYTES_PER_TOKEN = 32 * 1024
DEFAULT_METRICS_NAMESPACE = "fanout"
_NAMESPACE = re.compile(r"[A-Za-z0-9._#:/-]{1,255}")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _int(variable: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(variable, f"expected an integer, got {raw!r}") from None


def _bool(variable: str, raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("0", "false", "no", "off"):
        return False
    if lowered in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(variable, f"expected true or false, got {raw!r}")


def _url(variable: str, raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(variable, f"expected an http(s) URL, got {raw!r}")
    return raw.rstrip("/")


def _text(variable: str, raw: str) -> str:
    return raw


def _rate(variable: str, raw: str) -> RateLimit:
    return RateLimit.parse(raw, variable)


def _metrics(variable: str, raw: str) -> str:
    if raw.lower() not in ("emf", "off"):
        raise ConfigError(variable, f"expected emf or off, got {raw!r}")
    return raw.lower()


def _namespace(variable: str, raw: str) -> str:
    # CloudWatch's namespace rules; AWS/ is AWS's own.
    if not _NAMESPACE.fullmatch(raw) or raw.startswith("AWS/"):
        raise ConfigError(variable, f"not a CloudWatch namespace: {raw!r}")
    return raw


def _dimension(variable: str, raw: str) -> str:
    # A dimension value: printable ASCII, at most 1024 characters.
    if not (raw.isascii() and raw.isprintable() and raw.strip() and len(raw) <= 1024):
        raise ConfigError(variable, f"expected up to 1024 printable ASCII characters, got {raw!r}")
    return raw


def _log_level(variable: str, raw: str) -> str:
    if raw.upper() not in _LOG_LEVELS:
        raise ConfigError(variable, f"expected one of {', '.join(_LOG_LEVELS)}, got {raw!r}")
    return raw.upper()


@dataclass(frozen=True)
class Setting:
    """One setting: the field, the variables it is read from (the first set wins), how a
    value is read, and its bounds (checked on every ``FanoutConfig``, however it was made)."""

    field: str
    variables: tuple[str, ...]
    read: Callable[[str, str], object]
    low: float | None = None
    high: float | None = None
    zero_unsets: bool = False  # a variable of 0 means unset (None)

    @property
    def variable(self) -> str:
        """The variable an error names."""
        return self.variables[0]

    def from_env(self, env: Mapping[str, str]) -> tuple[bool, object]:
        """(found, value) from ``env``: not found when every variable is unset or blank."""
        for variable in self.variables:
            raw = env.get(variable, "").strip()
            if raw:
                value = self.read(variable, raw)
                if self.zero_unsets and value == 0:
                    return True, None
                return True, value
        return False, None

    def check(self, value: object) -> None:
        """ConfigError naming the variable if ``value`` is out of bounds (None: unset)."""
        if value is None or isinstance(value, bool) or not isinstance(value, int | float):
            return
        if (self.low is not None and value < self.low) or (
            self.high is not None and value > self.high
        ):
            raise ConfigError(
                self.variable, f"must be between {self.low:g} and {self.high:g}, got {value:g}"
            )


_YEAR = 366 * 86400
# Every setting the library reads from the environment, in one place.
SETTINGS: tuple[Setting, ...] = (
    Setting("table", ("FANOUT_TABLE",), _text),
    Setting("ttl_seconds", ("FANOUT_TTL_SECONDS",), _int, 60, _YEAR),
    Setting("dynamodb_endpoint", ("AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL"), _url),
    Setting("region", ("AWS_REGION", "AWS_DEFAULT_REGION"), _text),
    Setting("strategy", ("FANOUT_STRATEGY",), _text),
    Setting("concurrency", ("FANOUT_CONCURRENCY",), _int, 1, 1024),
    Setting("segments", ("FANOUT_SEGMENTS",), _int, 1, 1000),
    Setting("page_size", ("FANOUT_PAGE_SIZE",), _int, 1, 10_000),
    Setting("max_attempts", ("FANOUT_MAX_ATTEMPTS",), _int, 1, 20),
    Setting("queue_url", ("FANOUT_QUEUE_URL",), _url),
    Setting("sqs_endpoint", ("AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL"), _url),
    Setting(
        "management_endpoint",
        ("AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI", "AWS_ENDPOINT_URL"),
        _url,
    ),
    Setting("policy", ("FANOUT_POLICY",), _text),
    Setting("rate_limit", ("FANOUT_RATE_LIMIT",), _rate),
    Setting("user_rate_limit", ("FANOUT_USER_RATE_LIMIT",), _rate),
    Setting("max_rooms_per_connection", ("FANOUT_MAX_ROOMS_PER_CONNECTION",), _int, 1, 1000),
    Setting(
        "max_connections_per_user",
        ("FANOUT_MAX_CONNECTIONS_PER_USER",),
        _int,
        1,
        100_000,
        zero_unsets=True,
    ),
    Setting("presence_events", ("FANOUT_PRESENCE_EVENTS",), _bool),
    Setting("history_seconds", ("FANOUT_HISTORY_SECONDS",), _int, 0, _YEAR),
    Setting("history_max", ("FANOUT_HISTORY_MAX",), _int, 1, 1_000_000),
    Setting("dedup_seconds", ("FANOUT_DEDUP_SECONDS",), _int, 1, _YEAR, zero_unsets=True),
    Setting("connecting_seconds", ("FANOUT_CONNECTING_SECONDS",), _int, 0, 900),
    Setting("adaptive_rate", ("FANOUT_ADAPTIVE_RATE",), _bool),
    Setting(
        "max_posts_per_second",
        ("FANOUT_MAX_POSTS_PER_SECOND",),
        _int,
        1,
        1_000_000,
        zero_unsets=True,
    ),
    Setting("metrics", ("FANOUT_METRICS",), _metrics),
    Setting("metrics_namespace", ("FANOUT_METRICS_NAMESPACE",), _namespace),
    Setting("service", ("FANOUT_SERVICE",), _dimension),
    Setting("log_level", ("FANOUT_LOG_LEVEL",), _log_level),
)


def read_settings(
    settings: tuple[Setting, ...], env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Field -> value of each of ``settings`` set in ``env`` (default: ``os.environ``)."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for setting in settings:
        found, value = setting.from_env(env)
        if found:
            values[setting.field] = value
    return values


def load_hook(variable: str, spec: str) -> Callable[..., Any]:
    """The callable ``package.module:function`` names; ConfigError naming ``variable`` if none."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigError(variable, f"{spec!r}: expected package.module:function")
    try:
        target = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ConfigError(variable, f"cannot load {spec!r}: {error}") from None
    if not callable(target):
        raise ConfigError(variable, f"{spec!r} is not a callable")
    hook: Callable[..., Any] = target
    return hook


def local_credentials(endpoint: str | None) -> tuple[str, str] | None:
    """Keys for a local backend (any are accepted there), so that a bare machine needs no
    AWS profile; None for AWS, or when the environment has keys of its own."""
    if is_loopback(endpoint) and not os.environ.get("AWS_ACCESS_KEY_ID"):
        return ("local", "local")
    return None


@dataclass(frozen=True)
class RateLimit:
    """``count`` tokens in any ``seconds`` (``FANOUT_RATE_LIMIT=COUNT/SECONDS``)."""

    count: int
    seconds: float
    variable: str = field(default="FANOUT_RATE_LIMIT", compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 < self.seconds <= 86_400:
            raise ConfigError(self.variable, f"{self.count}/{self.seconds} is no rate")

    @classmethod
    def parse(cls, raw: str, variable: str = "FANOUT_RATE_LIMIT") -> RateLimit:
        """``"10/1"``: ten tokens a second."""
        match = _RATE.fullmatch(raw)
        if match is None:
            raise ConfigError(variable, f"expected COUNT/SECONDS, got {raw!r}")
        return cls(int(match.group(1)), float(match.group(2)), variable)

    def __str__(self) -> str:
        return f"{self.count}/{self.seconds:g}"


def is_loopback(url: str | None) -> bool:
    """True for an endpoint on this machine (a local backend, not AWS)."""
    return url is not None and urlsplit(url).hostname in _LOOPBACK_HOSTS


@dataclass(frozen=True)
class FanoutConfig:
    """Settings for one table; build it with ``FanoutConfig.from_env()`` or directly."""

    table: str = DEFAULT_TABLE
    ttl_seconds: int = DEFAULT_TTL_SECONDS
    dynamodb_endpoint: str | None = None
    region: str = DEFAULT_REGION
    strategy: str = DEFAULT_STRATEGY
    concurrency: int = DEFAULT_CONCURRENCY  # posts in flight at once
    segments: int = DEFAULT_SEGMENTS  # parallel_scan's TotalSegments
    page_size: int | None = None  # DynamoDB Limit per request; None reads 1 MB pages
    max_attempts: int = DEFAULT_MAX_ATTEMPTS  # per post, on 429, 5xx and timeouts
    queue_url: str | None = None  # sqs_batched's queue
    sqs_endpoint: str | None = None
    management_endpoint: str | None = None  # overrides every connection's callback URL
    policy: str = DEFAULT_POLICY  # a built-in policy's name, or package.module:function
    rate_limit: RateLimit | None = None  # per connection, on every action; None: off
    user_rate_limit: RateLimit | None = None  # per principal, beside it; None: off
    max_rooms_per_connection: int = DEFAULT_MAX_ROOMS
    max_connections_per_user: int | None = None  # a principal's live connections; None: any
    presence_events: bool = False  # post presence.join / presence.leave to a room's members
    history_seconds: int = 0  # keep each room's frames this long, numbered; 0: no history
    history_max: int = DEFAULT_HISTORY_MAX  # frames kept per room (and for everyone)
    dedup_seconds: int | None = None  # idempotency keys' window; None: history's, or 5 min
    connecting_seconds: int = DEFAULT_CONNECTING_SECONDS  # a 410 younger keeps the rows
    adaptive_rate: bool = True  # a 429 halves the posts in flight (AIMD)
    max_posts_per_second: float | None = None  # one invocation's cap; None: none
    metrics: str | None = None  # "emf" or "off"; None: emf inside Lambda, off elsewhere
    metrics_namespace: str = DEFAULT_METRICS_NAMESPACE
    service: str | None = None  # the Service dimension; None: the function's name
    log_level: str | None = None  # fanout_core's logger level, set by the handlers

    @property
    def dedup_window(self) -> int:
        """Seconds within which a second publish with the same key is a duplicate."""
        if self.dedup_seconds is not None:
            return self.dedup_seconds
        return self.history_seconds or DEFAULT_DEDUP_SECONDS

    def __post_init__(self) -> None:
        if not _TABLE_NAME.fullmatch(self.table):
            raise ConfigError("FANOUT_TABLE", f"not a DynamoDB table name: {self.table!r}")
        for setting in SETTINGS:
            setting.check(getattr(self, setting.field))
        # Text settings made directly, not read: checked as a variable would be.
        for setting in SETTINGS:
            value = getattr(self, setting.field)
            if setting.read in (_metrics, _namespace, _dimension, _log_level) and value is not None:
                object.__setattr__(self, setting.field, setting.read(setting.variable, value))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> FanoutConfig:
        """Read the settings from ``env`` (default: ``os.environ``); fail fast on a bad value."""
        return cls(**read_settings(SETTINGS, env))
