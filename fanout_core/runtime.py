"""The objects the handlers share: built on first use, once per Lambda container."""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, replace

from fanout_core import keys
from fanout_core.audience import Audience, Target
from fanout_core.config import FanoutConfig
from fanout_core.delivery import Backoff, Deliverer
from fanout_core.delivery.posting import BotoPoster, Poster
from fanout_core.history import History
from fanout_core.message import Message, encode_json, new_message_id
from fanout_core.policy import Policy, load_policy
from fanout_core.presence import Presence
from fanout_core.queue import BatchSender, sqs_client
from fanout_core.ratelimit import RateLimiter
from fanout_core.result import FanoutResult
from fanout_core.store import Clock, ConnectionStore
from fanout_core.strategy import FanoutStrategy, strategy_class
from fanout_core.worker import TaskRunner


@dataclass
class Runtime:
    """Config, store, delivery, the configured strategy, who may do what, and history."""

    config: FanoutConfig
    store: ConnectionStore
    deliverer: Deliverer
    strategy: FanoutStrategy
    policy: Policy
    presence: Presence
    history: History
    limiter: RateLimiter | None = None  # FANOUT_RATE_LIMIT; None: off
    tasks: TaskRunner | None = None  # the SQS worker's read tasks (a queue is configured)

    def publish(
        self,
        message: Message,
        audience: Audience | None = None,
        *,
        key: str | None = None,
        sender_scope: str = "",
    ) -> FanoutResult:
        """Fan ``message`` out: claim its idempotency key, number and keep it (history on,
        to a room or everyone), then post; announce connections found gone.

        A key already claimed within the window fans out nothing: the result says
        ``duplicate`` and names the first message. A publish that raises releases its key,
        so that a retry publishes (and may reach some members twice, with a new id).
        """
        audience = audience or Audience(room=message.room)
        numbered = self.history.enabled and audience.user is None and audience.connections is None
        if numbered:
            replace(message, seq=keys.MAX_SEQ).frame()  # with its seq, it must still fit
        claim = None
        if key is not None:
            claim = (dedup_scope(audience) + sender_scope, key)
            first = self.history.claim(*claim, message.id)
            if first is not None:
                return FanoutResult(
                    self.strategy.name, message.room, first, audience.label, duplicate=True
                )
        try:
            if numbered:
                scope = keys.scope_of(audience.room)
                message = replace(message, seq=self.history.next_seq(scope))
                assert message.seq is not None
                # Kept before any post: a client that resumes meanwhile finds it.
                self.history.keep(scope, message.seq, message.frame())
            result = self.strategy.fanout(message, audience)
        except BaseException:
            if claim is not None:
                self.history.release(*claim, message.id)
            raise
        result.seq = message.seq
        self.presence.settle()
        return result

    def resume(
        self,
        connection_id: str,
        endpoint: str,
        room: str | None,
        *,
        since: int | None = None,
        last: int | None = None,
        epoch: int | None = None,
    ) -> FanoutResult:
        """Post a scope's retained frames after ``since`` (or its ``last`` N) to one
        connection, in seq order, one at a time, then ``history.end``.

        ``complete`` in ``history.end`` is false exactly when a frame after ``since`` is not
        retained (trimmed, expired, or lost by a publish that failed after taking its
        number), or when ``epoch`` is not the counter's: the client then knows it missed
        something. A post that fails ends the resume there, with no ``history.end``.
        """
        scope = keys.scope_of(room)
        at = self.history.position(scope)
        if since is None:
            since = max(0, at.seq - (last or 0))
        elif epoch is not None and epoch != at.epoch:
            since = -1  # another numbering: all of this one is new, and something was missed
        result = FanoutResult("history", room, "", "caller")
        target = [Target(connection_id, endpoint)]
        expected = max(since, 0) + 1
        for retained in self.history.after(scope, max(since, 0), at.seq):  # page by page
            self.deliverer.deliver_targets(target, retained.frame.encode(), result)
            if result.gone or result.failed:  # gone, or a hole in what it received
                self.presence.settle()
                return result
            if retained.seq == expected:
                expected += 1
        complete = 0 <= since <= at.seq and expected == at.seq + 1
        end: dict[str, object] = {"id": new_message_id(), "event": "history.end", "room": room}
        end["from"] = None
        end.update({"seq": at.seq, "epoch": at.epoch, "complete": complete})
        self.deliverer.deliver_targets(target, encode_json(end).encode(), result)
        self.presence.settle()
        return result

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
        adaptive=config.adaptive_rate,
        max_posts_per_second=config.max_posts_per_second,
    )
    fanout = cls(store, deliverer, config)
    presence.strategy = fanout
    limiter = None
    if config.rate_limit is not None:
        limiter = RateLimiter(store.models, config.rate_limit, clock)
    history = History(store.models, config, clock)
    tasks = None
    if config.queue_url:
        queue_url = config.queue_url

        def sender(result: FanoutResult) -> BatchSender:
            return BatchSender(sqs_client(config), queue_url, result)

        per_message = getattr(fanout, "targets_per_message", None)
        tasks = TaskRunner(store, sender, page_size=config.page_size, per_message=per_message)
    return Runtime(config, store, deliverer, fanout, policy, presence, history, limiter, tasks)


def dedup_scope(audience: Audience) -> str:
    """What an idempotency key is unique within: the audience it published to."""
    if audience.user is not None:
        return keys.user_index_pk(audience.user)
    if audience.connections is not None:
        chosen = ",".join(sorted(set(audience.connections))).encode()
        return keys.CONNECTION_PREFIX + hashlib.sha256(chosen).hexdigest()[:32]
    return keys.scope_of(audience.room)


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
