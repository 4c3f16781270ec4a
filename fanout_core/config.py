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
_TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


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

    def __post_init__(self) -> None:
        if not _TABLE_NAME.fullmatch(self.table):
            raise ConfigError("FANOUT_TABLE", f"not a DynamoDB table name: {self.table!r}")
        if self.ttl_seconds < 60:
            raise ConfigError("FANOUT_TTL_SECONDS", f"must be at least 60, got {self.ttl_seconds}")

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
        )
