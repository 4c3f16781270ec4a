"""``Fanout``: what backend code calls to publish, list a room's members and disconnect a user.

From any Lambda or process, with no WebSocket event at hand: an order service, a stream
consumer, a cron job. It runs through the configured strategy, as a client's
``sendMessage`` does, with the same table, clients and Management API.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fanout_core import keys, metrics
from fanout_core.audience import Audience
from fanout_core.config import FanoutConfig
from fanout_core.errors import ConfigError
from fanout_core.message import DEFAULT_EVENT, Message, validate_event
from fanout_core.policy import Policy
from fanout_core.result import FanoutResult
from fanout_core.runtime import Runtime, build_runtime, current_runtime, get_runtime

if TYPE_CHECKING:
    from fanout_core.delivery.posting import Closer, Poster
    from fanout_core.reads import Clock, Member


@dataclass(frozen=True)
class DisconnectResult:
    """What ``disconnect_user`` did."""

    user: str
    connections: int  # live connections found
    closed: int  # closed by DELETE @connections
    gone: int  # already gone (410): only their rows were left
    failed: int  # DELETE failed otherwise: rows kept, the connection may still be open
    rows_deleted: int


class Fanout:
    """Publish to a room, a user, chosen connections or everyone, from backend code.

    ``Fanout()`` and ``Fanout.from_env()`` use the container's runtime, the one the handlers
    use: clients are built once, on first use, and shared. ``Fanout(config)`` (or
    ``from_env(mapping)``), or a ``poster`` or ``policy`` of its own, builds a runtime of its
    own on first use. ``policy`` is that runtime's access policy in place of the one
    ``FANOUT_POLICY`` names, for handlers that run on it (``runtime.set_runtime``); backend
    code is trusted: ``publish`` never asks a policy.
    """

    def __init__(
        self,
        config: FanoutConfig | None = None,
        *,
        runtime: Runtime | None = None,
        poster: Poster | None = None,
        policy: Policy | None = None,
        clock: Clock = time.time,
    ) -> None:
        if runtime is not None and (config, poster, policy) != (None, None, None):
            raise ValueError("give a runtime, or what to build one from, not both")
        self._config = config
        self._runtime = runtime
        self._poster = poster
        self._policy = policy
        self._clock = clock
        self._lock = threading.Lock()
        self._closer: Closer | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Fanout:
        """From ``FANOUT_*`` and ``AWS_*`` variables: ``os.environ`` unless ``env`` is given."""
        return cls() if env is None else cls(FanoutConfig.from_env(env))

    @property
    def runtime(self) -> Runtime:
        """The store, deliverer and strategy this publishes through (built on first use)."""
        if self._runtime is None:
            with self._lock:
                if self._runtime is None:
                    if (self._config, self._poster, self._policy) == (None, None, None):
                        self._runtime = get_runtime()
                    else:
                        self._runtime = build_runtime(
                            self._config or FanoutConfig.from_env(),
                            poster=self._poster,
                            clock=self._clock,
                            policy=self._policy,
                        )
        return self._runtime

    @property
    def closer(self) -> Closer:
        """What ``disconnect_user`` closes connections with (built on first use)."""
        if self._closer is None:
            runtime = self.runtime
            with self._lock:
                if self._closer is None:
                    self._closer = _closer_for(runtime.deliverer.poster, runtime.config)
        return self._closer

    def publish(
        self,
        data: Any,
        *,
        room: str | None = None,
        user: str | None = None,
        connections: Iterable[str] | None = None,
        exclude: Iterable[str] = (),
        event: str = DEFAULT_EVENT,
        idempotency_key: str | None = None,
    ) -> FanoutResult:
        """Send ``data`` (any JSON value) to one audience; with none given, to everyone.

        ``from`` is null in the frame. Raises TypeError if ``data`` is not JSON,
        PayloadTooLargeError if its frame is over 128 KB, ValueError (an InvalidKeyError
        for a bad room, user or id) for a bad audience: all before any read or post.
        With ``idempotency_key`` (1-64 of A-Z a-z 0-9 _ -), a second publish with the same key
        to the same audience within FANOUT_DEDUP_SECONDS fans out nothing; its result says
        ``duplicate``.
        """
        from fanout_core.outgoing import outgoing
        from fanout_core.publishing import publish

        audience = Audience(
            room=room,
            user=user,
            connections=None if connections is None else _ids(connections),
            exclude=frozenset(_ids(exclude)),
        )
        message = Message(None, room=room, event=validate_event(event), data=data)
        if idempotency_key is not None:
            keys.validate_idempotency_key(idempotency_key)
        # Framed once: TypeError and PayloadTooLargeError before any read or post.
        history = self._config_of().history_seconds > 0
        ready = outgoing(message, audience, history=history)
        runtime = self.runtime
        with metrics.invocation("publish", runtime.config):
            try:
                return publish(ready, runtime.strategy, runtime.history, key=idempotency_key)
            finally:
                runtime.finish()

    def history(self, room: str | None = None, *, since: int = 0) -> Iterator[dict[str, Any]]:
        """The retained frames of ``room`` (None: everyone's) after ``since``, in seq order,
        read page by page; ConfigError if this API keeps no history."""
        runtime = self.runtime
        if runtime.config.history_seconds <= 0:
            raise ConfigError("FANOUT_HISTORY_SECONDS", "history is off: set it above 0")
        scope = keys.scope_of(room)
        latest = runtime.history.position(scope).seq
        for retained in runtime.history.after(scope, since, latest):
            yield json.loads(retained.frame)

    def members(self, room: str, *, page_size: int | None = None) -> Iterator[Member]:
        """The live connections of ``room`` with their principals, read page by page."""
        for page in self.runtime.store.members(room, page_size=page_size):
            yield from page

    def disconnect_user(self, user: str) -> DisconnectResult:
        """Close every live connection of ``user`` (DELETE @connections), then delete its rows.

        A connection whose DELETE fails (not 410) keeps its rows, so a retry finds it again.
        """
        from fanout_core.delivery.posting import PostStatus

        runtime, closer = self.runtime, self.closer
        found = closed = gone = failed = rows = 0
        with metrics.invocation("disconnect_user", runtime.config), _finishing(runtime):
            for page in list(runtime.store.user_pages(user)):
                for target in page.targets:
                    found += 1
                    outcome = closer.delete(target.endpoint, target.connection_id)
                    if outcome.status not in (PostStatus.OK, PostStatus.GONE):
                        failed += 1
                        continue
                    closed += outcome.status is PostStatus.OK
                    gone += outcome.status is PostStatus.GONE
                    departure = runtime.store.remove(target.connection_id)
                    rows += departure.rows
                    if runtime.config.presence_events and departure.rooms:
                        runtime.presence.left(departure)
        return DisconnectResult(user, found, closed, gone, failed, rows)

    def _config_of(self) -> FanoutConfig:
        """The configuration publishing follows, without building anything."""
        if self._runtime is not None:
            return self._runtime.config
        if self._config is not None:
            return self._config
        shared = current_runtime()
        return shared.config if shared is not None else FanoutConfig.from_env()

    def close(self) -> None:
        """Close a runtime this built for itself (the container's shared one stays)."""
        if self._runtime is not None and self._runtime is not current_runtime():
            self._runtime.close()
        self._runtime = None
        self._closer = None


@contextlib.contextmanager
def _finishing(runtime: Runtime) -> Iterator[None]:
    """Run the block, then end the invocation (``Runtime.finish``) whatever happened."""
    try:
        yield
    finally:
        runtime.finish()


def _closer_for(poster: Poster, config: FanoutConfig) -> Closer:
    """``poster`` if it can close connections, else boto3's client with the same settings."""
    from fanout_core.delivery.posting import BotoPoster, Closer, EndpointPoster

    if isinstance(poster, Closer):
        return poster
    if isinstance(poster, EndpointPoster):  # AsyncHttpPoster: it posts, boto3 closes
        return BotoPoster(
            override=poster.override,
            pool_size=poster.pool_size,
            timeout=poster.timeout,
            region=poster.region,
        )
    return BotoPoster(
        override=config.management_endpoint, pool_size=config.concurrency, region=config.region
    )


def _ids(values: Iterable[str]) -> tuple[str, ...]:
    if isinstance(values, str):
        raise ValueError("connections and exclude take a list of connection ids, not a string")
    return tuple(values)
