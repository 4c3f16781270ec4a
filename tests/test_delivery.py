"""The 410, 429, 5xx, 403, 413 and timeout paths, over real HTTP to the local Management API."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from fanout_core.audience import targets_of
from fanout_core.delivery import Backoff, Deliverer
from fanout_core.delivery.posting import BotoPoster, PostOutcome, PostStatus
from fanout_core.errors import PayloadTooLargeError
from fanout_core.local.connections import CLOSED_KEPT, SOCKET_INBOX_LIMIT
from fanout_core.local.management_api import LocalManagementApi
from fanout_core.message import MAX_PAYLOAD_BYTES, Message
from fanout_core.outgoing import outgoing
from fanout_core.result import FanoutResult, counted
from fanout_core.store import ConnectionStore, Page, Target
from fanout_core.strategy import strategy_class
from tests.support import frames
from tests.support.strategy_classes import GsiQuery

ENDPOINT = "https://abcd123.execute-api.us-east-1.amazonaws.com/prod"


def no_sleep(seconds: float) -> None:
    assert 0 <= seconds <= 2.0  # the backoff is bounded


@pytest.fixture
def deliverer(store: ConnectionStore, local_api: LocalManagementApi) -> Iterator[Deliverer]:
    poster = BotoPoster(override=f"{local_api.url}/prod", timeout=1.0)
    deliverer = Deliverer(
        poster, on_gone=store.disconnect, concurrency=4, backoff=Backoff(attempts=3), sleep=no_sleep
    )
    yield deliverer
    deliverer.close()


def room_fanout(
    store: ConnectionStore, deliverer: Deliverer, sender: str, text: str = "hi"
) -> FanoutResult:
    strategy = strategy_class("gsi_query")(store, deliverer, store.config)
    return strategy.fanout(outgoing(Message(sender, text, "r")))


def connect(store: ConnectionStore, api: LocalManagementApi, *, live: bool = True) -> str:
    cid = api.connections.open()
    store.connect(cid, ENDPOINT, rooms=["r", "other"])
    if not live:
        api.connections.close(cid)
    return cid


def test_gone_connection_is_deleted_with_memberships_and_sender_kept(
    store: ConnectionStore, deliverer: Deliverer, local_api: LocalManagementApi
) -> None:
    sender = connect(store, local_api)
    gone = connect(store, local_api, live=False)
    result = room_fanout(store, deliverer, sender)
    assert (result.delivered, result.gone, result.failed) == (1, 1, 0)
    assert store.get_connection(gone) is None
    assert {row.connection_id for row in store.rows()} == {sender}
    assert len(store.rows()) == 3  # the sender's connection and both memberships


def test_sender_gone_deletes_the_sender_only(
    store: ConnectionStore, deliverer: Deliverer, local_api: LocalManagementApi
) -> None:
    sender = connect(store, local_api, live=False)
    other = connect(store, local_api)
    result = room_fanout(store, deliverer, sender)
    assert (result.delivered, result.gone) == (1, 1)
    assert {row.connection_id for row in store.rows()} == {other}


def test_410_for_a_connection_still_in_the_table_deletes_it(
    store: ConnectionStore, deliverer: Deliverer, local_api: LocalManagementApi
) -> None:
    a = connect(store, local_api)
    b = connect(store, local_api)
    local_api.faults.add(410, connection_id=b)
    result = room_fanout(store, deliverer, a)
    assert (result.delivered, result.gone) == (1, 1)
    assert {row.connection_id for row in store.rows()} == {a}


@pytest.mark.parametrize("status", [429, 500])
def test_throttled_or_failing_posts_are_retried(
    store: ConnectionStore, deliverer: Deliverer, local_api: LocalManagementApi, status: int
) -> None:
    a = connect(store, local_api)
    local_api.faults.add(status, connection_id=a, times=2)
    result = room_fanout(store, deliverer, a)
    assert (result.delivered, result.retried, result.failed) == (1, 2, 0)
    assert result.throttled == (2 if status == 429 else 0)
    assert len(local_api.connections.inbox(a)) == 1
    assert local_api.total("POST", status) == 2


def test_retries_are_bounded_and_nothing_is_deleted(
    store: ConnectionStore, deliverer: Deliverer, local_api: LocalManagementApi
) -> None:
    a = connect(store, local_api)
    local_api.faults.add(429, connection_id=a, times=100)
    result = room_fanout(store, deliverer, a)
    assert (result.delivered, result.failed, result.failed_retryable) == (0, 1, 1)
    assert result.failures[0].reason == "429 LimitExceededException after 3 attempts"
    assert local_api.total("POST") == 3
    assert store.get_connection(a) is not None


def test_forbidden_is_failed_not_retried_not_deleted(
    store: ConnectionStore, deliverer: Deliverer, local_api: LocalManagementApi
) -> None:
    a = connect(store, local_api)
    local_api.faults.add(403, connection_id=a)
    result = room_fanout(store, deliverer, a)
    assert (result.delivered, result.gone, result.failed, result.retried) == (0, 0, 1, 0)
    assert result.failures[0].reason == "403 ForbiddenException"
    assert not result.failures[0].retryable
    assert store.get_connection(a) is not None


def test_413_from_the_endpoint_is_failed_not_deleted(
    store: ConnectionStore, deliverer: Deliverer, local_api: LocalManagementApi
) -> None:
    a = connect(store, local_api)
    local_api.faults.add(413, connection_id=a)
    result = room_fanout(store, deliverer, a)
    assert (result.failed, result.retried) == (1, 0)
    assert store.get_connection(a) is not None


def test_timeout_is_retried(
    store: ConnectionStore, deliverer: Deliverer, local_api: LocalManagementApi
) -> None:
    a = connect(store, local_api)
    local_api.faults.add(0, connection_id=a, hang_seconds=3)
    result = room_fanout(store, deliverer, a)
    assert (result.delivered, result.retried) == (1, 1)
    assert len(local_api.connections.inbox(a)) == 1


def test_payload_over_128_kb_is_rejected_before_any_read_or_post(
    store: ConnectionStore, deliverer: Deliverer, local_api: LocalManagementApi
) -> None:
    a = connect(store, local_api)
    with pytest.raises(PayloadTooLargeError):
        room_fanout(store, deliverer, a, "x" * MAX_PAYLOAD_BYTES)
    assert local_api.total("POST") == 0
    # The server enforces the same limit on a raw post.
    raw = BotoPoster(override=local_api.url).post(ENDPOINT, a, b"x" * (MAX_PAYLOAD_BYTES + 1))
    assert raw == PostOutcome(PostStatus.TOO_LARGE, "413 PayloadTooLargeException")


def test_largest_allowed_frame_is_delivered(
    store: ConnectionStore, deliverer: Deliverer, local_api: LocalManagementApi
) -> None:
    a = connect(store, local_api)
    envelope = len(Message(a, "", "r", id="0" * 32).frame())
    result = room_fanout(store, deliverer, a, "y" * (MAX_PAYLOAD_BYTES - envelope))
    assert result.delivered == 1
    (raw,) = local_api.connections.inbox(a)
    assert len(raw) == MAX_PAYLOAD_BYTES
    assert frames.decode(raw)["body"].startswith("y")


def test_concurrency_is_bounded(store: ConnectionStore, local_api: LocalManagementApi) -> None:
    ids = [connect(store, local_api) for _ in range(12)]
    local_api.faults.latency = 0.05
    poster = BotoPoster(override=local_api.url)
    deliverer = Deliverer(poster, on_gone=store.disconnect, concurrency=3)
    try:
        result = room_fanout(store, deliverer, ids[0])
    finally:
        deliverer.close()
    assert result.delivered == 12
    assert local_api.max_in_flight == 3


class RecordingPoster:
    """Counts how far the audience had been read when each post started."""

    def __init__(self) -> None:
        self.pages_read = 0
        self.lead: list[int] = []
        self.posted = 0
        self.lock = threading.Lock()

    def post(self, endpoint: str, connection_id: str, data: bytes) -> PostOutcome:
        with self.lock:
            self.posted += 1
            self.lead.append(self.pages_read * 10 - self.posted)
        return PostOutcome(PostStatus.OK)

    def close(self) -> None:
        pass


def test_delivery_streams_pages(store: ConnectionStore) -> None:
    """Targets read ahead of posts stay within the concurrency, whatever the audience."""
    poster = RecordingPoster()

    def pages() -> Iterator[Page]:
        for p in range(200):
            poster.pages_read += 1
            yield Page(tuple(Target(f"c{p}-{i}", ENDPOINT) for i in range(10)), 10, None)

    deliverer = Deliverer(poster, on_gone=store.disconnect, concurrency=4)
    result = FanoutResult("test", None, "m")
    try:
        deliverer.deliver_targets(targets_of(counted(pages(), result)), b"x", result)
    finally:
        deliverer.close()
    assert (result.delivered, result.dynamodb_requests) == (2000, 200)
    # At most one page plus the Deliverer's read-ahead (in flight and queued) were read
    # ahead of the posts: 16 of 2,000 here.
    assert deliverer.read_ahead == 4 + 2
    assert max(poster.lead) <= 10 + deliverer.read_ahead


class CountingNothing(GsiQuery):
    """Hands the audience on without counting a page: the base counts them anyway."""

    name = "counting_nothing"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.seen: list[str] = []

    def dispatch(self, pages: Iterator[Page], data: bytes, result: FanoutResult) -> None:
        self.seen.extend(t.connection_id for page in pages for t in page.targets)


def test_fanout_counts_pages_whatever_dispatch_does(
    store: ConnectionStore, local_api: LocalManagementApi
) -> None:
    ids = [connect(store, local_api) for _ in range(5)]
    config = dataclasses.replace(store.config, page_size=2)
    strategy = CountingNothing(ConnectionStore(config, clock=store.clock), None, config)
    result = strategy.fanout(outgoing(Message(ids[0], "hi", "r")))
    assert sorted(strategy.seen) == sorted(ids)
    assert result.items_returned == 5
    assert result.dynamodb_requests >= 3  # pages of 2: 2 + 2 + 1, and maybe an empty last one


class SlowPoster:
    """Answers after ``seconds``, raises for the ids in ``broken``; counts posts at once."""

    def __init__(self, seconds: float = 0.0, broken: frozenset[str] = frozenset()) -> None:
        self.seconds = seconds
        self.broken = broken
        self.posted: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()

    def post(self, endpoint: str, connection_id: str, data: bytes) -> PostOutcome:
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            time.sleep(self.seconds)
            if connection_id in self.broken:
                raise ValueError(f"cannot post to {connection_id}")
            with self.lock:
                self.posted.append(connection_id)
            return PostOutcome(PostStatus.OK)
        finally:
            with self.lock:
                self.in_flight -= 1

    def close(self) -> None:
        pass


def test_targets_read_slower_than_posts_wake_idle_workers() -> None:
    """Workers that ran out of targets take the next ones as they are read."""
    poster = SlowPoster()
    deliverer = Deliverer(poster, concurrency=4)

    def trickle() -> Iterator[Target]:
        for i in range(30):
            if i % 5 == 0:
                time.sleep(0.01)  # a page read: every worker is idle meanwhile
            yield Target(f"c{i}", ENDPOINT)

    result = FanoutResult("test", None, "m")
    try:
        deliverer.deliver_targets(trickle(), b"x", result)
        again = FanoutResult("test", None, "m")  # the same Deliverer, a second fan-out
        deliverer.deliver_targets([Target("last", ENDPOINT)], b"x", again)
    finally:
        deliverer.close()
    assert (result.delivered, again.delivered) == (30, 1)
    assert sorted(poster.posted) == sorted([f"c{i}" for i in range(30)] + ["last"])


def test_a_post_that_raises_is_raised_after_every_other_post_ended() -> None:
    poster = SlowPoster(seconds=0.01, broken=frozenset({"c3"}))
    deliverer = Deliverer(poster, concurrency=3)
    result = FanoutResult("test", None, "m")
    try:
        with pytest.raises(ValueError, match="cannot post to c3"):
            deliverer.deliver_targets([Target(f"c{i}", ENDPOINT) for i in range(12)], b"x", result)
    finally:
        deliverer.close()
    assert result.delivered == 11
    assert poster.max_in_flight == 3


def test_the_local_api_forgets_old_closed_connections_and_socket_frames(
    local_api: LocalManagementApi,
) -> None:
    """``fanout serve`` under churn: memory stays bounded, and a post still answers 410."""
    poster = BotoPoster(override=f"{local_api.url}/prod", timeout=1.0)
    conns = local_api.connections
    first = conns.open()
    assert poster.post(ENDPOINT, first, b"kept").status is PostStatus.OK
    conns.close(first)
    for _ in range(CLOSED_KEPT):
        conns.close(conns.open())
    assert conns.inbox(first) == []  # forgotten: the 1,000 closed since are remembered
    assert poster.post(ENDPOINT, first, b"late").status is PostStatus.GONE
    received: list[bytes] = []

    async def sink(body: bytes) -> None:
        received.append(body)

    socket = conns.open(sink=sink)
    for i in range(SOCKET_INBOX_LIMIT + 5):
        assert poster.post(ENDPOINT, socket, b"%d" % i).status is PostStatus.OK
    assert len(received) == SOCKET_INBOX_LIMIT + 5  # the client got every frame
    assert conns.inbox(socket)[0] == b"5"  # the inbox shows the last ones
    conns.close(socket)
    assert conns.inbox(socket)[-1] == b"%d" % (SOCKET_INBOX_LIMIT + 4)
    assert poster.post(ENDPOINT, socket, b"after").status is PostStatus.GONE
    poster.close()
