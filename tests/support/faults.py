"""Fault injection for the property tests: DynamoDB errors, a crashing SQS worker, a post log.

Management API faults (429, 500, timeouts, 410) come from the library's own
``LocalManagementApi.faults``; what is here covers the rest:

- ``DynamoFaults`` answers chosen DynamoDB operations with an error (by default a
  ``ProvisionedThroughputExceededException``) from botocore's ``before-send`` event of the
  PynamoDB client. The request never reaches the backend, as when DynamoDB throttles it, and
  the answer goes through botocore's real parsing and retry logic: a throttle is retried with
  backoff, and one that outlasts the retries is raised as it would be on AWS. With
  ``after=True`` the request is executed first and its success replaced by the error, as
  when DynamoDB applies a write and then answers 500: whatever the caller rolls back, it
  must roll back what really landed.
- ``CrashingWorker`` wraps ``sqs_worker`` and crashes after handling part of a batch, so the
  event source (``fanout_core.local.sqs_pump``) redelivers the whole batch.
- ``PostLog`` records every post the local Management API answered, and makes a connection
  answered 410 stay gone, as on AWS.
"""

from __future__ import annotations

import contextlib
import json
import threading
import weakref
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import botocore.retries.quota
import botocore.retries.standard
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.hooks import first_non_none_response

from fanout_core.local.management_api import LocalManagementApi
from fanout_core.queue import Batch, decode
from fanout_core.store import ConnectionStore

THROTTLE = "ProvisionedThroughputExceededException"
_EVENT = "before-send.dynamodb"
_BACKOFF_CONFIG = "_DEFAULT_BACKOFF_CONFIG"  # botocore's base delays of its standard mode
_SERVICE_BACKOFF_CONFIG = "_SERVICE_BACKOFF_CONFIG"  # and its per-service overrides


class _RawBody:
    """The ``raw`` of an AWSResponse: botocore reads the body through ``stream()``."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


@dataclass
class DynamoFault:
    """Answer the next ``times`` calls of ``operation`` with ``code`` (``after``: once executed)."""

    operation: str
    times: int
    code: str = THROTTLE
    status: int = 400
    after: bool = False
    matching: str | None = None  # only requests whose body holds this text


class DynamoFaults:
    """Errors injected into one store's DynamoDB client; thread-safe; ``close()`` removes them."""

    def __init__(self, store: ConnectionStore) -> None:
        self.client: Any = store.models.client
        self._lock = threading.Lock()
        self._faults: list[DynamoFault] = []
        self._unique_id = f"fanout-test-faults-{id(self)}"
        self._rerouted: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
        self._local = threading.local()  # set while an ``after`` fault executes its request
        self.answered: Counter[str] = Counter()  # operation -> injected errors answered
        self.executed: Counter[str] = Counter()  # operation -> requests run before their error
        self.dropped: Counter[str] = Counter()  # operation -> faults close() found unanswered
        events = cast(Any, self.client.meta.events)  # its stubs want handlers returning None
        events.register_first(_EVENT, self._before_send, unique_id=self._unique_id)

    def add(
        self,
        operation: str,
        *,
        times: int = 1,
        code: str = THROTTLE,
        status: int = 400,
        after: bool = False,
        matching: str | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``operation`` (``Query``, ...) with ``code``.

        ``after``: execute each call first, then answer the error instead of its success.
        ``matching``: only calls whose request body holds this text (a key, say).
        """
        if times < 1:
            raise ValueError(f"times must be at least 1, got {times}")
        with self._lock:
            self._faults.append(DynamoFault(operation, times, code, status, after, matching))

    def pending(self, operation: str | None = None) -> int:
        """Injected errors not answered yet (for one operation, or all)."""
        with self._lock:
            return sum(f.times for f in self._faults if operation in (None, f.operation))

    def clear(self) -> None:
        """Drop every pending fault."""
        with self._lock:
            self._faults.clear()

    def close(self) -> None:
        """Clear the faults (counted in ``dropped``) and unhook from the client."""
        with self._lock:
            for fault in self._faults:
                self.dropped[fault.operation] += fault.times
        self.clear()
        self.client.meta.events.unregister(_EVENT, unique_id=self._unique_id)

    def _take(self, operation: str, body: bytes) -> DynamoFault | None:
        with self._lock:
            for fault in self._faults:
                if fault.operation == operation and (
                    fault.matching is None or fault.matching.encode() in body
                ):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    self.answered[operation] += 1
                    return fault
        return None

    def _execute(self, request: Any, event_name: str) -> bool:
        """Run the request as if no fault were armed (moto in-process, or HTTP); did it pass?"""
        self._local.executing = True
        try:
            answer = first_non_none_response(
                self.client.meta.events.emit(event_name, request=request)
            )
        finally:
            self._local.executing = False
        if answer is None:
            answer = self.client._endpoint.http_session.send(request)
        answer.content  # read, so the connection goes back to the pool  # noqa: B018
        return bool(answer.status_code == 200)

    def _before_send(self, request: Any, event_name: str = "", **_: Any) -> AWSResponse | None:
        if getattr(self._local, "executing", False):
            return None  # the request an ``after`` fault runs: let it through
        with self._lock:
            original = self._rerouted.pop(request, None)
        if original is not None:
            request.url = original  # a retry of a faulted attempt goes where it should
        body = request.body if isinstance(request.body, bytes) else str(request.body).encode()
        fault = self._take(event_name.rsplit(".", 1)[-1], body)
        if fault is None:
            return None  # sent as usual (or answered by moto in-process)
        if fault.after and self._execute(request, event_name):
            with self._lock:
                self.executed[fault.operation] += 1
        # botocore calls every before-send handler and uses the first answer, so moto
        # in-process (a later handler) would still execute the request: on a URL that is
        # no AWS endpoint it stands aside, and nothing is sent when a handler answered.
        with self._lock:
            self._rerouted[request] = request.url
        request.url = "http://injected-fault.invalid/"
        body = json.dumps(
            {
                "__type": f"com.amazonaws.dynamodb.v20120810#{fault.code}",
                "message": f"injected {fault.code}",
            }
        ).encode()
        headers = HTTPHeaders()
        headers["Content-Type"] = "application/x-amz-json-1.0"
        headers["Content-Length"] = str(len(body))
        headers["x-amzn-RequestId"] = "injected-fault"
        return AWSResponse(request.url, fault.status, headers, _RawBody(body))


@contextlib.contextmanager
def short_throttle_backoff(scale: float = 0.01) -> Iterator[None]:
    """Shrink botocore's backoff after a DynamoDB error to at most ``scale`` s, doubling.

    After a throttle it is up to 1 s, after another error (a 500) 25 ms, doubling at each of
    PynamoDB's retries: seconds per faulted call. Only the sleep changes: whether and how
    often a call is retried is still botocore's standard retry mode, as PynamoDB sets it.
    """
    backoff = botocore.retries.standard.ExponentialBackoff
    saved: dict[str, float] = getattr(backoff, _BACKOFF_CONFIG)
    services: dict[str, dict[str, float]] = getattr(backoff, _SERVICE_BACKOFF_CONFIG)
    saved_dynamodb = services.get("dynamodb")
    setattr(backoff, _BACKOFF_CONFIG, {**saved, "throttling_base_scale": scale})
    services["dynamodb"] = {"non_throttling_base_scale": scale / 10}
    try:
        yield
    finally:
        setattr(backoff, _BACKOFF_CONFIG, saved)
        if saved_dynamodb is None:
            services.pop("dynamodb", None)
        else:
            services["dynamodb"] = saved_dynamodb


class RetryQuotas:
    """Give every botocore retry quota its full capacity again at each ``refill()``.

    botocore's standard retry mode keeps a quota per client (500 units; a retry costs 5
    after a throttle, 14 after a 500, and a success returns only the last cost): after
    enough retried calls the client stops retrying and the call fails at once, as it would
    on AWS under sustained throttling. The clients live as long as a test, across its
    Hypothesis examples; without a refill per example an example's outcome would depend on
    the examples before it. Inside ``active()``, a quota is refilled on its first
    acquisition after a ``refill()``.
    """

    def __init__(self) -> None:
        self.epoch = 0
        self._seen: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()

    def refill(self) -> None:
        self.epoch += 1

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        quota = botocore.retries.quota.RetryQuota
        acquire = quota.acquire

        def refilled_acquire(this: Any, capacity_amount: int) -> bool:
            if self._seen.get(this) != self.epoch:
                self._seen[this] = self.epoch
                with this._lock:
                    this._available_capacity = this._max_capacity
            return acquire(this, capacity_amount)

        setattr(quota, "acquire", refilled_acquire)  # noqa: B010 (mypy refuses assigning a method)
        try:
            yield
        finally:
            setattr(quota, "acquire", acquire)  # noqa: B010


RETRY_QUOTAS = RetryQuotas()


class WorkerCrash(RuntimeError):
    """The injected crash of an SQS worker invocation."""


class CrashingWorker:
    """An SQS handler that, when armed, handles the first records of a batch and then raises.

    The event source then redelivers the whole batch, the handled records included.
    """

    def __init__(self, handler: Callable[[dict[str, Any], Any], Any]) -> None:
        self.handler = handler
        self.armed = 0
        self.after = 1
        self.crashes = 0
        self.invocations = 0
        self.handled: Counter[str] = Counter()  # connection id -> post batches naming it

    def arm(self, *, after: int, times: int = 1) -> None:
        """Crash the next ``times`` invocations, each after handling ``after`` records."""
        self.after = after
        self.armed = times

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.invocations += 1
        if self.armed > 0:
            self.armed -= 1
            self.crashes += 1
            self._count(event["Records"][: self.after])
            self.handler({"Records": event["Records"][: self.after]}, context)
            raise WorkerCrash(f"injected crash after {self.after} records")
        self._count(event["Records"])
        return self.handler(event, context)

    def _count(self, records: list[dict[str, Any]]) -> None:
        # Each post batch handled may post to its ids once (a read task's page is not known
        # from its record: a crash's redelivery may post to any of the audience again).
        for record in records:
            message = decode(record["body"])
            if isinstance(message, Batch):
                self.handled.update(message.connection_ids)


class PostLog:
    """Every post the local Management API answered: (connection id, HTTP status).

    A connection answered 410 is closed, so an injected 410 for a live connection behaves
    like a real one: later posts (a redelivered SQS record) are answered 410 too.
    """

    def __init__(self, api: LocalManagementApi) -> None:
        self.api = api
        self._lock = threading.Lock()
        self.posts: list[tuple[str, int]] = []
        api.on_post = self._record

    def _record(self, connection_id: str, status: int) -> None:
        if status == 0:
            return  # a held post (injected timeout) ends unanswered after its client gave up
        with self._lock:
            self.posts.append((connection_id, status))
        if status == 410:
            self.api.connections.close(connection_id)

    def take(self) -> list[tuple[str, int]]:
        """The posts since the last call."""
        with self._lock:
            posts, self.posts = self.posts, []
        return posts

    def peek(self) -> list[tuple[str, int]]:
        """The posts since the last ``take``, left for it."""
        with self._lock:
            return list(self.posts)

    @contextlib.contextmanager
    def apart(self) -> Iterator[list[tuple[str, int]]]:
        """The posts made inside the block, in a list of their own: those made before it
        stay for the next ``take``, so a check judges only what its own call posted."""
        with self._lock:
            before, self.posts = self.posts, []
        made: list[tuple[str, int]] = []
        try:
            yield made
        finally:
            with self._lock:
                made.extend(self.posts)
                self.posts = before

    def close(self) -> None:
        """Stop recording."""
        self.api.on_post = None
