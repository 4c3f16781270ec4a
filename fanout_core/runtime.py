"""The objects the handlers share: built on first use, once per Lambda container."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from fanout_core.config import FanoutConfig
from fanout_core.delivery import Backoff, Deliverer
from fanout_core.delivery.posting import BotoPoster, Poster
from fanout_core.policy import Policy, load_policy
from fanout_core.presence import Presence
from fanout_core.ratelimit import RateLimiter
from fanout_core.store import Clock, ConnectionStore
from fanout_core.strategy import FanoutStrategy, strategy_class


@dataclass
class Runtime:
    """Config, store, delivery, the configured strategy, and who may do what."""

    config: FanoutConfig
    store: ConnectionStore
    deliverer: Deliverer
    strategy: FanoutStrategy
    policy: Policy
    presence: Presence
    limiter: RateLimiter | None = None  # FANOUT_RATE_LIMIT; None: off

    def close(self) -> None:
        """Stop delivery threads and close the poster's connections."""
        self.deliverer.close()
        self.deliverer.poster.close()


def default_poster(config: FanoutConfig) -> Poster:
    """``AsyncHttpPoster``, or ``BotoPoster`` (the boto3 client, proxy-aware) behind a proxy."""
    if _https_proxy():
        return BotoPoster(
            override=config.management_endpoint, pool_size=config.concurrency, region=config.region
        )
    from fanout_core.delivery.http_poster import AsyncHttpPoster

    return AsyncHttpPoster(
        override=config.management_endpoint, pool_size=config.concurrency, region=config.region
    )


def build_runtime(
    config: FanoutConfig | None = None,
    *,
    poster: Poster | None = None,
    clock: Clock = time.time,
    strategy: str | None = None,
    policy: Policy | None = None,
) -> Runtime:
    """A runtime from ``config`` (default: the environment); posts through ``default_poster``.

    ``policy`` replaces the one ``FANOUT_POLICY`` names.
    """
    config = config or FanoutConfig.from_env()
    cls = strategy_class(strategy or config.strategy)  # checked before anything is built
    policy = policy or load_policy(config.policy)
    store = ConnectionStore(config, clock=clock)
    presence = Presence(store, events=config.presence_events)
    deliverer = Deliverer(
        poster or default_poster(config),
        on_gone=presence.gone,
        concurrency=config.concurrency,
        backoff=Backoff(attempts=config.max_attempts),
    )
    fanout = cls(store, deliverer, config)
    presence.strategy = fanout
    limiter = None
    if config.rate_limit is not None:
        limiter = RateLimiter(store.models, config.rate_limit, clock)
    return Runtime(config, store, deliverer, fanout, policy, presence, limiter)


def _https_proxy() -> bool:
    # AsyncHttpPoster speaks to the endpoint directly; behind a proxy only boto3 gets through.
    from urllib.request import getproxies

    return bool(getproxies().get("https"))


_runtime: Runtime | None = None
_lock = threading.Lock()


def get_runtime() -> Runtime:
    """The container's runtime, built from the environment on first call."""
    global _runtime
    if _runtime is None:
        with _lock:
            if _runtime is None:
                _runtime = build_runtime()
    return _runtime


def current_runtime() -> Runtime | None:
    """The container's runtime if something built it already, else None."""
    return _runtime


def set_runtime(runtime: Runtime | None) -> Runtime | None:
    """Install ``runtime`` for the handlers (None: rebuild from the environment next time)."""
    global _runtime
    with _lock:
        previous, _runtime = _runtime, runtime
    return previous
