"""The parts the handlers share: built on first use, once per Lambda container.

``Runtime`` is a container, not a service: it holds the configuration, the clients and the
parts built from them, and builds each one the first time something asks for it, so that a
``$connect`` never imports or builds delivery, queue, history or presence code it does not
use. What a message goes through is in ``fanout_core.publishing``. Parts are built in one
direction: the store, then the deliverer (whose 410 callback deletes through the store),
then the strategy, then presence; a departure found by a 410 is queued and announced once,
when the invocation ends (``finish``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from fanout_core import metrics
from fanout_core.config import FanoutConfig
from fanout_core.policy import Policy, load_policy
from fanout_core.strategy import FanoutStrategy, strategy_class

if TYPE_CHECKING:
    from fanout_core.delivery import Deliverer
    from fanout_core.delivery.posting import Poster
    from fanout_core.history import History
    from fanout_core.presence import Departures, Presence
    from fanout_core.ratelimit import RateLimiter
    from fanout_core.reads import Clock
    from fanout_core.store import ConnectionStore
    from fanout_core.worker import TaskRunner

T = TypeVar("T")


class _Part(Generic[T]):
    """A part of the runtime, built by ``build`` on first use (under the runtime's lock),
    then kept; assigning one replaces it (tests swap a strategy in)."""

    def __init__(self, build: Callable[[Runtime], T]) -> None:
        self.build = build
        self.name = build.__name__
        self.__doc__ = build.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, runtime: None, owner: type) -> _Part[T]: ...

    @overload
    def __get__(self, runtime: Runtime, owner: type) -> T: ...

    def __get__(self, runtime: Runtime | None, owner: type) -> T | _Part[T]:
        if runtime is None:
            return self
        parts = runtime._parts
        if self.name not in parts:
            with runtime._lock:
                if self.name not in parts:
                    parts[self.name] = self.build(runtime)
        value: T = parts[self.name]
        return value

    def __set__(self, runtime: Runtime, value: T) -> None:
        runtime._parts[self.name] = value


class Runtime:
    """Config, store, delivery, the configured strategy, who may do what, and history."""

    def __init__(
        self,
        config: FanoutConfig,
        *,
        poster: Poster | None = None,
        clock: Clock = time.time,
        strategy: str | None = None,
        policy: Policy | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        # Checked now, before anything is built: a bad name fails the first invocation.
        self.strategy_class = strategy_class(strategy or config.strategy)
        self.policy: Policy = policy or load_policy(config.policy)
        self._poster = poster
        self._lock = threading.RLock()
        self._parts: dict[str, Any] = {}

    @_Part
    def store(self) -> ConnectionStore:
        """The table's rows: connections, memberships, listings."""
        from fanout_core.store import ConnectionStore

        store = ConnectionStore(self.config, clock=self.clock)
        # ReadUnits and WriteUnits: the capacity DynamoDB reports for each call.
        from fanout_core.capacity import instrument

        instrument(store.models.client)
        return store

    @_Part
    def departures(self) -> Departures:
        """Connections found gone by a 410, deleted at once, announced when the invocation ends."""
        from fanout_core.presence import Departures

        return Departures(
            self.store,
            announce=self.config.presence_events,
            connecting_seconds=self.config.connecting_seconds,
        )

    @_Part
    def deliverer(self) -> Deliverer:
        """Posts frames; a 410 deletes the connection (and queues its departure)."""
        from fanout_core.delivery import Backoff, Deliverer

        config = self.config
        return Deliverer(
            self._poster or default_poster(config),
            on_gone=self.departures.gone,
            concurrency=config.concurrency,
            backoff=Backoff(attempts=config.max_attempts),
            adaptive=config.adaptive_rate,
            max_posts_per_second=config.max_posts_per_second,
        )

    @_Part
    def strategy(self) -> FanoutStrategy:
        """The configured fan-out strategy."""
        return self.strategy_class(self.store, self.deliverer, self.config)

    @_Part
    def presence(self) -> Presence:
        """Presence answers and, if on, join and leave events."""
        from fanout_core.presence import Presence

        return Presence(self.store, self.strategy, events=self.config.presence_events)

    @_Part
    def history(self) -> History:
        """Counters, retained frames and idempotency keys."""
        from fanout_core.history import History

        return History(self.store.models, self.config, self.clock)

    @_Part
    def limiter(self) -> RateLimiter | None:
        """The per-connection rate limit (``FANOUT_RATE_LIMIT``); None when off."""
        if self.config.rate_limit is None:
            return None
        from fanout_core.ratelimit import RateLimiter

        return RateLimiter(self.store.models, self.config.rate_limit, self.clock)

    @_Part
    def user_limiter(self) -> RateLimiter | None:
        """The per-principal rate limit (``FANOUT_USER_RATE_LIMIT``); None when off."""
        if self.config.user_rate_limit is None:
            return None
        from fanout_core.ratelimit import RateLimiter

        limit = self.config.user_rate_limit
        return RateLimiter(self.store.models, limit, self.clock, per_user=True)

    @_Part
    def tasks(self) -> TaskRunner | None:
        """What runs queued tasks in the ``sqs_worker``: the strategy's, or, with a queue
        configured and a strategy that queues nothing, ``sqs_batched``'s (a worker whose
        FANOUT_STRATEGY is not set still drains the tree); None without a queue."""
        runner = self.strategy.task_runner()
        if runner is None and self.config.queue_url:
            tree = strategy_class("sqs_batched")(self.store, self.deliverer, self.config)
            runner = tree.task_runner()
        return runner

    def built(self, part: str) -> bool:
        """True if the part named ``part`` has been built."""
        return part in self._parts

    def finish(self) -> None:
        """End an invocation: announce the departures its 410s found (presence events on),
        then write its metrics (``fanout_core.metrics``; nothing for a nested entry)."""
        try:
            if self.built("departures") and self.departures.pending:
                self.presence.announce(self.departures)
        finally:
            metrics.flush(self.config)

    def close(self) -> None:
        """Stop delivery threads and close the poster's connections."""
        if self.built("deliverer"):
            self.deliverer.close()
            self.deliverer.poster.close()


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
    return Runtime(
        config or FanoutConfig.from_env(),
        poster=poster,
        clock=clock,
        strategy=strategy,
        policy=policy,
    )


def default_poster(config: FanoutConfig) -> Poster:
    """``AsyncHttpPoster``, or ``BotoPoster`` (the boto3 client, proxy-aware) behind a proxy."""
    if _https_proxy():
        from fanout_core.delivery.posting import BotoPoster

        return BotoPoster(
            override=config.management_endpoint, pool_size=config.concurrency, region=config.region
        )
    from fanout_core.delivery.http_poster import AsyncHttpPoster

    return AsyncHttpPoster(
        override=config.management_endpoint, pool_size=config.concurrency, region=config.region
    )


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
