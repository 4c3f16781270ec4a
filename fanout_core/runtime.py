"""The objects the handlers share: built on first use, once per Lambda container."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from fanout_core.config import FanoutConfig
from fanout_core.delivery import Deliverer
from fanout_core.management import BotoPoster, FastPoster, Poster
from fanout_core.store import Clock, ConnectionStore
from fanout_core.strategy import FanoutStrategy, strategy_class


@dataclass
class Runtime:
    """Config, store, delivery and the configured strategy."""

    config: FanoutConfig
    store: ConnectionStore
    deliverer: Deliverer
    strategy: FanoutStrategy

    def close(self) -> None:
        """Stop delivery threads and close the poster's connections."""
        self.deliverer.close()
        close = getattr(self.deliverer.poster, "close", None)
        if callable(close):
            close()


def build_runtime(
    config: FanoutConfig | None = None,
    *,
    poster: Poster | None = None,
    clock: Clock = time.time,
    strategy: str | None = None,
) -> Runtime:
    """A runtime from ``config`` (default: the environment).

    Posts go through ``FastPoster`` unless ``poster`` is given, or an HTTPS proxy is
    configured: then through ``BotoPoster`` (the boto3 client, slower, proxy-aware).
    """
    config = config or FanoutConfig.from_env()
    store = ConnectionStore(config, clock=clock)
    if poster is None:
        kind = BotoPoster if _https_proxy() else FastPoster
        poster = kind(
            override=config.management_endpoint,
            pool_size=config.concurrency,
            region=config.region,
        )
    deliverer = Deliverer(
        store, poster, concurrency=config.concurrency, max_attempts=config.max_attempts
    )
    cls = strategy_class(strategy or config.strategy)
    return Runtime(config, store, deliverer, cls(store, deliverer, config))


def _https_proxy() -> bool:
    # FastPoster speaks to the endpoint directly; behind a proxy, only the boto3 client works.
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


def set_runtime(runtime: Runtime | None) -> Runtime | None:
    """Install ``runtime`` for the handlers (None: rebuild from the environment next time)."""
    global _runtime
    with _lock:
        previous, _runtime = _runtime, runtime
    return previous
