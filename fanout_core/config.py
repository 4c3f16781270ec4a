"""FanoutConfig: every setting the library reads from the environment, checked once."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
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


def _int_var(env: Mapping[str, str], name: str, default: int, *, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(name, f"expected an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(name, f"must be between {low} and {high}, got {value}")
    return value


def _endpoint_var(env: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        raw = env.get(name, "").strip()
        if not raw:
            continue
        parts = urlsplit(raw)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(name, f"expected an http(s) URL, got {raw!r}")
        return raw.rstrip("/")
    return None


def _bool_var(env: Mapping[str, str], name: str, *, default: bool = False) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(name, f"expected true or false, got {raw!r}")


@dataclass(frozen=True)
class RateLimit:
    """``count`` sends in any ``seconds`` (``FANOUT_RATE_LIMIT=COUNT/SECONDS``)."""

    count: int
    seconds: float

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 < self.seconds <= 86_400:
            raise ConfigError("FANOUT_RATE_LIMIT", f"{self.count}/{self.seconds} is no rate")

    @classmethod
    def parse(cls, raw: str) -> RateLimit:
        """``"10/1"``: ten sends a second."""
        match = _RATE.fullmatch(raw)
        if match is None:
            raise ConfigError("FANOUT_RATE_LIMIT", f"expected COUNT/SECONDS, got {raw!r}")
        return cls(int(match.group(1)), float(match.group(2)))

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
    rate_limit: RateLimit | None = None  # per connection, on sendMessage; None: off
    presence_events: bool = False  # post presence.join / presence.leave to a room's members
    history_seconds: int = 0  # keep each room's frames this long, numbered; 0: no history
    history_max: int = DEFAULT_HISTORY_MAX  # frames kept per room (and for everyone)
    dedup_seconds: int | None = None  # idempotency keys' window; None: history's, or 5 min
    adaptive_rate: bool = True  # a 429 halves the posts in flight (AIMD)
    max_posts_per_second: float | None = None  # one invocation's cap; None: none

    @property
    def dedup_window(self) -> int:
        """Seconds within which a second publish with the same key is a duplicate."""
        if self.dedup_seconds is not None:
            return self.dedup_seconds
        return self.history_seconds or DEFAULT_DEDUP_SECONDS

    def __post_init__(self) -> None:
        if not _TABLE_NAME.fullmatch(self.table):
            raise ConfigError("FANOUT_TABLE", f"not a DynamoDB table name: {self.table!r}")
        if self.ttl_seconds < 60:
            raise ConfigError("FANOUT_TTL_SECONDS", f"must be at least 60, got {self.ttl_seconds}")
        for variable, value in (
            ("FANOUT_CONCURRENCY", self.concurrency),
            ("FANOUT_SEGMENTS", self.segments),
            ("FANOUT_MAX_ATTEMPTS", self.max_attempts),
            ("FANOUT_PAGE_SIZE", 1 if self.page_size is None else self.page_size),
        ):
            if value < 1:
                raise ConfigError(variable, f"must be at least 1, got {value}")
        limits: tuple[tuple[str, float, int], ...] = (
            ("FANOUT_HISTORY_SECONDS", self.history_seconds, 0),
            ("FANOUT_HISTORY_MAX", self.history_max, 1),
            ("FANOUT_DEDUP_SECONDS", 1 if self.dedup_seconds is None else self.dedup_seconds, 1),
            ("FANOUT_MAX_POSTS_PER_SECOND", self.max_posts_per_second or 1, 1),
        )
        for variable, limit_value, low in limits:
            if limit_value < low:
                raise ConfigError(variable, f"must be at least {low}, got {limit_value}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> FanoutConfig:
        """Read the settings from ``env`` (default: ``os.environ``); fail fast on a bad value."""
        env = os.environ if env is None else env
        return cls(
            table=env.get("FANOUT_TABLE", "").strip() or DEFAULT_TABLE,
            ttl_seconds=_int_var(
                env, "FANOUT_TTL_SECONDS", DEFAULT_TTL_SECONDS, low=60, high=366 * 86400
            ),
            dynamodb_endpoint=_endpoint_var(env, "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL"),
            region=(
                env.get("AWS_REGION", "").strip()
                or env.get("AWS_DEFAULT_REGION", "").strip()
                or DEFAULT_REGION
            ),
            strategy=env.get("FANOUT_STRATEGY", "").strip() or DEFAULT_STRATEGY,
            concurrency=_int_var(env, "FANOUT_CONCURRENCY", DEFAULT_CONCURRENCY, low=1, high=1024),
            segments=_int_var(env, "FANOUT_SEGMENTS", DEFAULT_SEGMENTS, low=1, high=1000),
            page_size=_int_var(env, "FANOUT_PAGE_SIZE", 0, low=1, high=10_000) or None,
            max_attempts=_int_var(env, "FANOUT_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS, low=1, high=20),
            queue_url=_endpoint_var(env, "FANOUT_QUEUE_URL"),
            sqs_endpoint=_endpoint_var(env, "AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL"),
            management_endpoint=_endpoint_var(
                env, "AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI", "AWS_ENDPOINT_URL"
            ),
            policy=env.get("FANOUT_POLICY", "").strip() or DEFAULT_POLICY,
            rate_limit=(
                RateLimit.parse(env["FANOUT_RATE_LIMIT"])
                if env.get("FANOUT_RATE_LIMIT", "").strip()
                else None
            ),
            presence_events=_bool_var(env, "FANOUT_PRESENCE_EVENTS"),
            history_seconds=_int_var(env, "FANOUT_HISTORY_SECONDS", 0, low=0, high=366 * 86400),
            history_max=_int_var(
                env, "FANOUT_HISTORY_MAX", DEFAULT_HISTORY_MAX, low=1, high=1_000_000
            ),
            dedup_seconds=_int_var(env, "FANOUT_DEDUP_SECONDS", 0, low=0, high=366 * 86400) or None,
            adaptive_rate=_bool_var(env, "FANOUT_ADAPTIVE_RATE", default=True),
            max_posts_per_second=_int_var(
                env, "FANOUT_MAX_POSTS_PER_SECOND", 0, low=0, high=1_000_000
            )
            or None,
        )
