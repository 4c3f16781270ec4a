"""The connections the local API Gateway knows, and the faults a test injects into requests.

Shared by the local Management API (which posts to them) and the local WebSocket API (which
opens and closes them). Safe to use from any thread.
"""

from __future__ import annotations

import base64
import collections
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from fanout_core.delivery.rate import TokenBucket

Sink = Callable[[bytes], Awaitable[None]]
INBOX_LIMIT = 10_000
# A connection with a socket: its client has the frames; the inbox only shows the last ones.
SOCKET_INBOX_LIMIT = 100
# Closed connections remembered (their inboxes, for tests and the console); older ones are
# forgotten, and a post to them answers 410 as to any id the API does not know.
CLOSED_KEPT = 1_000
# The errors the local Management API can be told to answer, and their x-amzn-ErrorType.
ERROR_TYPES = {
    403: "ForbiddenException",
    410: "GoneException",
    413: "PayloadTooLargeException",
    429: "LimitExceededException",
    500: "InternalServerErrorException",
}
METHODS = ("POST", "GET", "DELETE")  # post a frame, describe, close: @connections/{id}


def new_connection_id() -> str:
    """An id shaped like API Gateway's: 12 random bytes, base64 (16 characters)."""
    return base64.b64encode(secrets.token_bytes(12)).decode().replace("/", "_")


@dataclass
class LocalConnection:
    """One connection the local API knows."""

    connection_id: str
    sink: Sink | None
    connected_at: float = field(default_factory=time.time)
    last_active_at: float = field(default_factory=time.time)
    inbox: collections.deque[bytes] = field(
        default_factory=lambda: collections.deque(maxlen=INBOX_LIMIT)
    )
    source_ip: str = "127.0.0.1"
    user_agent: str = "fanout-local"


@dataclass
class Fault:
    """An answer to give instead of the real one: ``status`` or, for 0, no answer at all."""

    status: int
    connection_id: str | None = None  # None: any connection
    times: int = 1
    hang_seconds: float = 30.0  # for status 0: how long to hold the request unanswered
    method: str = "POST"  # the requests it answers: POST (a post), GET or DELETE


class LocalConnections:
    """The live connections and everything posted to them; safe to use from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[str, LocalConnection] = {}
        self._closed: dict[str, LocalConnection] = {}
        self.on_close: Callable[[str], None] | None = None

    def open(self, connection_id: str | None = None, *, sink: Sink | None = None) -> str:
        """Register a live connection; returns its id."""
        connection_id = connection_id or new_connection_id()
        connection = LocalConnection(connection_id, sink)
        if sink is not None:
            connection.inbox = collections.deque(maxlen=SOCKET_INBOX_LIMIT)
        with self._lock:
            self._open[connection_id] = connection
        return connection_id

    def close(self, connection_id: str) -> bool:
        """Forget a connection: later posts to it answer 410. False if it was not open."""
        with self._lock:
            connection = self._open.pop(connection_id, None)
            if connection is not None:
                connection.sink = None  # the socket and its buffers can go
                self._closed[connection_id] = connection
                while len(self._closed) > CLOSED_KEPT:
                    del self._closed[next(iter(self._closed))]  # the longest closed
        return connection is not None

    def is_open(self, connection_id: str) -> bool:
        """True while posts to the id are delivered."""
        with self._lock:
            return connection_id in self._open

    def get(self, connection_id: str) -> LocalConnection | None:
        """The live connection, or None."""
        with self._lock:
            return self._open.get(connection_id)

    def inbox(self, connection_id: str) -> list[bytes]:
        """Every frame delivered to the connection, open or closed, oldest first."""
        with self._lock:
            connection = self._open.get(connection_id) or self._closed.get(connection_id)
            return list(connection.inbox) if connection else []

    def open_ids(self) -> list[str]:
        """The ids of the live connections."""
        with self._lock:
            return list(self._open)


class Faults:
    """Faults to inject into requests, latency into posts; safe to use from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self.latency = 0.0  # seconds added to every post
        self._account: TokenBucket | None = None
        self.account_throttled = 0  # posts answered 429 by the account's bucket

    def account_limit(self, rate: float | None, burst: float | None = None) -> None:
        """Answer posts past ``rate`` a second (``burst`` at once) with 429, as API Gateway's
        account throttle does (10,000 rps, burst 5,000 by default on AWS); None: no limit."""
        with self._lock:
            self._account = None if rate is None else TokenBucket(rate, burst)

    def over_account_limit(self) -> bool:
        """True if this post is past the account's rate (it takes a token otherwise)."""
        with self._lock:
            if self._account is None or self._account.take():
                return False
            self.account_throttled += 1
            return True

    def add(
        self,
        status: int,
        *,
        connection_id: str | None = None,
        times: int = 1,
        hang_seconds: float = 30.0,
        method: str = "POST",
    ) -> None:
        """Answer the next ``times`` requests (to ``connection_id``, or any) with ``status``.

        ``method`` is POST (posts), GET or DELETE (closes). ``status`` 0 holds the request
        unanswered for ``hang_seconds``: a timeout.
        """
        if status != 0 and status not in ERROR_TYPES:
            raise ValueError(f"no fault for status {status}; use one of {sorted(ERROR_TYPES)}")
        if method not in METHODS:
            raise ValueError(f"no fault for method {method!r}; use one of {', '.join(METHODS)}")
        with self._lock:
            self._faults.append(Fault(status, connection_id, times, hang_seconds, method))

    def clear(self) -> None:
        """Remove every pending fault and the latency."""
        with self._lock:
            self._faults.clear()
            self._account = None
        self.latency = 0.0

    def take(self, connection_id: str, method: str = "POST") -> Fault | None:
        """The fault for this request, if any (each fault is used ``times`` times)."""
        with self._lock:
            for fault in self._faults:
                if fault.method == method and fault.connection_id in (None, connection_id):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def pending(self) -> int:
        """How many faulty answers are still to be given."""
        with self._lock:
            return sum(f.times for f in self._faults)
