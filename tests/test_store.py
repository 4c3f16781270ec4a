"""ConnectionStore on moto in-process, moto server and dynalite."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from fanout_core import keys, reads
from fanout_core.delivery import Backoff
from fanout_core.errors import InvalidConnectionIdError, InvalidRoomNameError, NotConnectedError
from fanout_core.store import ConnectionStore, Page
from tests.support.clock import FakeClock
from tests.support.rows import rooms_of

ENDPOINT = "https://abc123.execute-api.us-east-1.amazonaws.com/prod"


def ids(pages: list[Page]) -> list[str]:
    return sorted(t.connection_id for page in pages for t in page.targets)


def room_ids(store: ConnectionStore, room: str, page_size: int | None = None) -> list[str]:
    return ids(list(store.room_pages(room, page_size=page_size)))


def everyone_ids(store: ConnectionStore, page_size: int | None = None) -> list[str]:
    return ids(list(store.everyone_pages(page_size=page_size)))


def scan_ids(store: ConnectionStore, room: str | None, page_size: int | None = None) -> list[str]:
    return ids(list(store.scan_pages(room, page_size=page_size)))


def test_connect_lists_connection_everywhere(store: ConnectionStore) -> None:
    store.connect("A1", ENDPOINT, rooms=["lobby"], principal="user-1")
    row = store.get_connection("A1")
    assert row is not None
    assert (row.endpoint, row.principal) == (ENDPOINT, "user-1")
    assert everyone_ids(store) == ["A1"]
    assert scan_ids(store, None) == ["A1"]
    assert room_ids(store, "lobby") == ["A1"]
    assert scan_ids(store, "lobby") == ["A1"]
    assert store.is_member("A1", "lobby")
    assert rooms_of(store, "A1") == ["lobby"]


def test_join_leave(store: ConnectionStore) -> None:
    store.connect("A1", ENDPOINT)
    store.connect("B2", ENDPOINT)
    store.join("A1", "r1")
    store.join("B2", "r1")
    store.join("B2", "r2")
    assert room_ids(store, "r1") == ["A1", "B2"]
    assert room_ids(store, "r2") == ["B2"]
    assert store.leave("B2", "r1") is True
    assert store.leave("B2", "r1") is False
    assert room_ids(store, "r1") == ["A1"]
    assert scan_ids(store, "r1") == ["A1"]
    assert not store.is_member("B2", "r1")


def test_join_needs_live_connection(store: ConnectionStore, clock: FakeClock) -> None:
    with pytest.raises(NotConnectedError):
        store.join("ghost", "r1")
    store.connect("A1", ENDPOINT)
    clock.advance(store.config.ttl_seconds + 1)
    with pytest.raises(NotConnectedError):
        store.join("A1", "r1")
    assert [row.sk for row in store.rows()] == [keys.CONNECTION_SK]


def test_disconnect_deletes_every_row_and_is_idempotent(store: ConnectionStore) -> None:
    rooms = [f"room-{i}" for i in range(30)]  # more than one batch of 25 deletes
    store.connect("A1", ENDPOINT, rooms=rooms[:10])
    for room in rooms[10:]:
        store.join("A1", room)
    store.connect("B2", ENDPOINT, rooms=["room-0"])
    assert store.disconnect("A1") == 31
    assert store.disconnect("A1") == 0
    assert {row.connection_id for row in store.rows()} == {"B2"}
    assert room_ids(store, "room-0") == ["B2"]
    assert everyone_ids(store) == ["B2"]


def test_expired_rows_are_never_read(store: ConnectionStore, clock: FakeClock) -> None:
    store.connect("OLD", ENDPOINT, rooms=["r"])
    clock.advance(store.config.ttl_seconds - 10)
    store.connect("NEW", ENDPOINT, rooms=["r"])
    clock.advance(11)  # OLD has expired; no backend deletes it
    assert len(store.rows()) == 4
    assert everyone_ids(store) == ["NEW"]
    assert scan_ids(store, None) == ["NEW"]
    assert room_ids(store, "r") == ["NEW"]
    assert scan_ids(store, "r") == ["NEW"]
    assert store.get_connection("OLD") is None
    assert not store.is_member("OLD", "r")
    assert rooms_of(store, "OLD") == []


def test_touch_extends_connection_and_memberships(store: ConnectionStore, clock: FakeClock) -> None:
    store.connect("A1", ENDPOINT, rooms=["r1", "r2"])
    clock.advance(store.config.ttl_seconds - 5)
    assert store.touch("A1") is True
    clock.advance(100)
    assert everyone_ids(store) == ["A1"]
    assert room_ids(store, "r1") == ["A1"]
    assert room_ids(store, "r2") == ["A1"]
    clock.advance(store.config.ttl_seconds)
    assert store.touch("A1") is False  # expired rows are not revived
    assert store.touch("never") is False
    assert len(store.rows()) == 3


def test_sweep_deletes_expired_rows_only(store: ConnectionStore, clock: FakeClock) -> None:
    store.connect("OLD", ENDPOINT, rooms=["r1", "r2"])
    store.connect("OLD2", ENDPOINT)
    clock.advance(store.config.ttl_seconds - 10)
    store.connect("NEW", ENDPOINT, rooms=["r1"])
    clock.advance(11)
    result = store.sweep(page_size=2)
    assert (result.connections, result.memberships) == (2, 2)
    assert sorted(row.connection_id for row in store.rows()) == ["NEW", "NEW"]
    assert store.sweep().connections == 0


@pytest.mark.parametrize("page_size", [1, 2, 3, 7])
def test_reads_follow_every_page(store: ConnectionStore, page_size: int) -> None:
    members = [f"c{i:02d}" for i in range(12)]
    for cid in members:
        store.connect(cid, ENDPOINT, rooms=["big"] if cid < "c08" else [])
    store.connect("x", ENDPOINT, rooms=["other"])
    expected_room = [cid for cid in members if cid < "c08"]
    assert room_ids(store, "big", page_size) == expected_room
    assert scan_ids(store, "big", page_size) == expected_room
    assert everyone_ids(store, page_size) == sorted([*members, "x"])
    assert scan_ids(store, None, page_size) == sorted([*members, "x"])


def test_room_page_count_includes_trailing_empty_page(store: ConnectionStore) -> None:
    for cid in ("a", "b", "c", "d"):
        store.connect(cid, ENDPOINT, rooms=["r"])
    pages = list(store.room_pages("r", page_size=2))
    # moto ends on a full page; dynalite adds an empty last page: both are read whole.
    assert [len(p.targets) for p in pages] in ([2, 2], [2, 2, 0])
    assert all(p.scanned >= len(p.targets) for p in pages)


@contextlib.contextmanager
def unprocessed_batch_gets(store: ConnectionStore, times: int) -> Iterator[list[int]]:
    """The next ``times`` BatchGetItem calls read nothing and leave every key unprocessed."""
    events = store.models.client.meta.events
    requested: list[Any] = []
    calls: list[int] = []

    def remember(params: dict[str, Any], **_: Any) -> None:
        requested.append(params["RequestItems"])

    def leave_unprocessed(parsed: dict[str, Any], **_: Any) -> None:
        calls.append(len(calls))
        if len(calls) <= times:
            parsed["Responses"] = {}
            parsed["UnprocessedKeys"] = requested[-1]

    events.register("before-parameter-build.dynamodb.BatchGetItem", remember)
    events.register("after-call.dynamodb.BatchGetItem", leave_unprocessed)
    try:
        yield calls
    finally:
        events.unregister("before-parameter-build.dynamodb.BatchGetItem", remember)
        events.unregister("after-call.dynamodb.BatchGetItem", leave_unprocessed)


def test_unprocessed_keys_are_read_again(
    store: ConnectionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    for cid in ("a", "b", "c"):
        store.connect(cid, ENDPOINT)
    monkeypatch.setattr(reads, "UNPROCESSED_BACKOFF", Backoff(attempts=3, base=0))
    with unprocessed_batch_gets(store, times=2) as calls:
        assert ids(list(store.connection_pages(["a", "b", "c"]))) == ["a", "b", "c"]
    assert len(calls) == 3
    with unprocessed_batch_gets(store, times=3) as calls, pytest.raises(RuntimeError) as raised:
        list(store.connection_pages(["a", "b", "c"]))
    assert str(raised.value) == "DynamoDB left keys unprocessed after every retry"
    assert len(calls) == 3


def test_parallel_scan_segments_cover_everyone_once(store: ConnectionStore) -> None:
    members = [f"s{i}" for i in range(20)]
    for cid in members:
        store.connect(cid, ENDPOINT, rooms=["r"])
    seen: list[str] = []
    for segment in range(4):
        seen += ids(list(store.scan_pages(None, segment=segment, total_segments=4, page_size=3)))
    assert sorted(seen) == sorted(members)


@pytest.mark.parametrize("room", ["", "x#CONN#y", "a b", "ROOM#x", "é", "r\x00", "x" * 10_000])
def test_invalid_room_changes_nothing(store: ConnectionStore, room: str) -> None:
    with pytest.raises(InvalidRoomNameError):
        store.connect("A1", ENDPOINT, rooms=["ok", room])
    assert store.rows() == []
    store.connect("A1", ENDPOINT)
    with pytest.raises(InvalidRoomNameError):
        store.join("A1", room)
    with pytest.raises(InvalidRoomNameError):
        store.leave("A1", room)
    with pytest.raises(InvalidRoomNameError):
        list(store.room_pages(room))
    assert len(store.rows()) == 1


@pytest.mark.parametrize("cid", ["", "a#b", "CONN#x", "x" * 129, "a b", "id\n"])
def test_invalid_connection_id_changes_nothing(store: ConnectionStore, cid: str) -> None:
    with pytest.raises(InvalidConnectionIdError):
        store.connect(cid, ENDPOINT)
    with pytest.raises(InvalidConnectionIdError):
        store.disconnect(cid)
    assert store.rows() == []


def test_invalid_endpoint_changes_nothing(store: ConnectionStore) -> None:
    with pytest.raises(ValueError, match="endpoint"):
        store.connect("A1", "not a url")
    assert store.rows() == []


def test_join_racing_disconnect_leaves_no_orphan(store: ConnectionStore) -> None:
    """A disconnect that lands between join's read and its put is caught by the re-check."""
    store.connect("A1", ENDPOINT)
    real_partition = store.partition
    calls = 0

    def read_then_disconnect(connection_id: str):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        partition = real_partition(connection_id)
        if calls == 1:
            store.disconnect(connection_id)
        return partition

    store.partition = read_then_disconnect  # type: ignore[method-assign]
    with pytest.raises(NotConnectedError):
        store.join("A1", "r1")
    assert store.rows() == []
