"""The construct's typed settings: the same FANOUT_* variables as the template's parameters."""

from __future__ import annotations

from dataclasses import dataclass

from fanout_core import config


@dataclass(frozen=True)
class FanoutSettings:
    """What every function reads; each field is the variable in its comment."""

    strategy: str = config.DEFAULT_STRATEGY  # FANOUT_STRATEGY
    concurrency: int = config.DEFAULT_CONCURRENCY  # FANOUT_CONCURRENCY
    segments: int = config.DEFAULT_SEGMENTS  # FANOUT_SEGMENTS
    ttl_seconds: int = config.DEFAULT_TTL_SECONDS  # FANOUT_TTL_SECONDS
    policy: str = config.DEFAULT_POLICY  # FANOUT_POLICY
    rate_limit: str = ""  # FANOUT_RATE_LIMIT, COUNT/SECONDS; empty is off
    user_rate_limit: str = ""  # FANOUT_USER_RATE_LIMIT, COUNT/SECONDS; empty is off
    max_rooms_per_connection: int = config.DEFAULT_MAX_ROOMS  # FANOUT_MAX_ROOMS_PER_CONNECTION
    max_connections_per_user: int = 0  # FANOUT_MAX_CONNECTIONS_PER_USER; 0 is no cap
    presence_events: bool = False  # FANOUT_PRESENCE_EVENTS
    history_seconds: int = 0  # FANOUT_HISTORY_SECONDS; 0 is off
    history_max: int = config.DEFAULT_HISTORY_MAX  # FANOUT_HISTORY_MAX
    dedup_seconds: int = 0  # FANOUT_DEDUP_SECONDS; 0 is the history window, or 300
    max_posts_per_second: int = 0  # FANOUT_MAX_POSTS_PER_SECOND; 0 is no cap
    metrics_namespace: str = config.DEFAULT_METRICS_NAMESPACE  # FANOUT_METRICS_NAMESPACE

    def __post_init__(self) -> None:
        # What the functions would refuse at their first invocation fails the synth instead.
        config.FanoutConfig.from_env(self.environment())

    def environment(self) -> dict[str, str]:
        """The variables, as the functions read them (the table and queue are added apart)."""
        return {
            "FANOUT_STRATEGY": self.strategy,
            "FANOUT_CONCURRENCY": str(self.concurrency),
            "FANOUT_SEGMENTS": str(self.segments),
            "FANOUT_TTL_SECONDS": str(self.ttl_seconds),
            "FANOUT_POLICY": self.policy,
            "FANOUT_RATE_LIMIT": self.rate_limit,
            "FANOUT_USER_RATE_LIMIT": self.user_rate_limit,
            "FANOUT_MAX_ROOMS_PER_CONNECTION": str(self.max_rooms_per_connection),
            "FANOUT_MAX_CONNECTIONS_PER_USER": str(self.max_connections_per_user),
            "FANOUT_PRESENCE_EVENTS": "true" if self.presence_events else "false",
            "FANOUT_HISTORY_SECONDS": str(self.history_seconds),
            "FANOUT_HISTORY_MAX": str(self.history_max),
            "FANOUT_DEDUP_SECONDS": str(self.dedup_seconds),
            "FANOUT_MAX_POSTS_PER_SECOND": str(self.max_posts_per_second),
            "FANOUT_METRICS_NAMESPACE": self.metrics_namespace,
        }
