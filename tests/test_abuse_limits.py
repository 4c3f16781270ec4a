"""Attacks on the limits, each kept as a test: actions outside the rate limit, repeated joins
and ``?room=``, a connection in hundreds of rooms pinging, a resume posting far more than one
token's worth, and one principal multiplying its connections' limits."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from fanout_core import handlers
from fanout_core.config import RateLimit
from fanout_core.fanout import Fanout
from fanout_core.policy import AccessRequest, Decision, open_policy
from fanout_core.tokens import ANSWER_BYTES_PER_TOKEN
from tests.support import frames
from tests.support.backends import Backend
from tests.support.clock import FakeClock
from tests.support.events import connect_event, disconnect_event
from tests.support.faults import DynamoFaults, short_throttle_backoff
from tests.support.harness import Chat, make_chat
from tests.support.machine import error_of

OK = {"statusCode": 200}

pytestmark = pytest.mark.parametrize("backend", ["moto", "dynalite"], indirect=True)


@pytest.fixture
def chat_with(backend: Backend, local_api: Any, clock: FakeClock) -> Callable[..., Chat]:
    def make(**settings: Any) -> Chat:
        return make_chat(backend, local_api, clock, "gsi_query", **settings)

    return make


def calls_of(chat: Chat) -> list[str]:
    """The DynamoDB operations the handlers' client makes from now on, in order."""
    calls: list[str] = []
    chat.runtime.store.models.client.meta.events.register(
        "before-parameter-build.dynamodb", lambda model, **_: calls.append(model.name)
    )
    return calls


def events_of(chat: Chat, cid: str, kind: str) -> list[dict[str, Any]]:
    return [f for f in chat.frames(cid) if f["event"] == kind]


# -- hole 2: presence, joins, leaves and pings outside the rate limit ---------------------


def test_every_action_a_client_repeats_takes_a_token(chat_with: Callable[..., Chat]) -> None:
    """A connection answered rate_limited on sends was still let join, leave, ask presence
    and ping, each a write or a read of the whole room, and every join and leave a fan-out."""
    chat = chat_with(rate_limit=RateLimit(2, 30), presence_events=True)
    a = chat.connect(rooms=["r"])
    b = chat.connect(rooms=["r"])
    assert chat.send(a, "one", room="r") == OK
    assert chat.send(a, "two", room="r") == OK
    assert error_of(chat.send(a, "three", room="r")) == (429, "rate_limited")
    before, posts = chat.table(), chat.api.total("POST")
    calls = calls_of(chat)
    for body in (
        {"action": "joinRoom", "room": "s"},
        {"action": "leaveRoom", "room": "r"},
        {"action": "presence", "room": "r"},
        {"action": "ping"},
    ):
        assert error_of(chat.call(a, body)) == (429, "rate_limited"), body
    assert chat.table() == before, "a refused action wrote"
    assert chat.api.total("POST") == posts, "a refused action posted"
    assert "BatchGetItem" not in calls  # no refused presence read the room's members
    assert chat.call(b, {"action": "presence", "room": "r"}) == OK  # b's bucket is its own


def test_joining_a_room_again_changes_nothing_and_announces_nothing(
    chat_with: Callable[..., Chat],
) -> None:
    chat = chat_with(presence_events=True)
    a = chat.connect(rooms=["r"])
    b = chat.connect()
    assert chat.call(b, {"action": "joinRoom", "room": "r"}) == OK
    after_first = chat.table()
    for _ in range(10):
        assert chat.call(b, {"action": "joinRoom", "room": "r"}) == OK
    assert chat.table() == after_first
    assert len(events_of(chat, a, "presence.join")) == 1


def test_the_same_room_asked_fifty_times_on_connect_is_asked_and_announced_once(
    chat_with: Callable[..., Chat],
) -> None:
    """Hole 3: the policy was asked 50 times and 50 joins were announced for one row."""
    asked: list[tuple[str, str | None]] = []

    def counting(request: AccessRequest) -> Decision:
        asked.append((request.action, request.room))
        return open_policy(request)

    chat = chat_with(presence_events=True, policy=counting)
    a = chat.connect(rooms=["lobby"])
    asked.clear()
    b = chat.connect(rooms=["lobby"] * 50)
    assert asked == [("connect", None), ("join", "lobby")]
    assert len(events_of(chat, a, "presence.join")) == 1
    assert sorted(sk for pk, sk, _ in chat.table() if pk == f"CONN#{b}") == ["CONN", "ROOM#lobby"]


# -- hole 4: rooms without a cap, a ping that wrote each one in turn ----------------------


def test_one_room_over_the_cap_is_400_and_writes_nothing(chat_with: Callable[..., Chat]) -> None:
    chat = chat_with(max_rooms_per_connection=3)
    a = chat.connect(rooms=["r1", "r2", "r3"])
    before = chat.table()
    assert error_of(chat.call(a, {"action": "joinRoom", "room": "r4"})) == (400, "too_many_rooms")
    assert chat.call(a, {"action": "joinRoom", "room": "r2"}) == OK  # in it: no more rooms
    assert chat.table() == before
    cid = chat.api.connections.open()
    refused = handlers.connect(connect_event(cid, rooms=["r1", "r2", "r3", "r4"]), None)
    assert error_of(refused) == (400, "too_many_rooms")
    assert chat.table() == before
    assert chat.call(a, {"action": "leaveRoom", "room": "r1"}) == OK
    assert chat.call(a, {"action": "joinRoom", "room": "r4"}) == OK


def test_joins_racing_past_the_cap_take_theirs_back(chat_with: Callable[..., Chat]) -> None:
    """Two joins that both read 2 of 3 rooms: the one that finds 4 after its write deletes
    its own membership and answers too_many_rooms."""
    chat = chat_with(max_rooms_per_connection=3)
    a = chat.connect(rooms=["r1", "r2"])
    store = chat.runtime.store
    stale = store.partition(a)  # read before the other join's write
    assert chat.call(a, {"action": "joinRoom", "room": "r3"}) == OK
    with pytest.raises(Exception, match="at most 3 rooms"):
        store.join(a, "r4", partition=stale, limit=3)
    assert sorted(store.partition(a).rooms) == ["r1", "r2", "r3"]


def test_a_ping_at_the_cap_refreshes_every_row_then_the_connection(
    chat_with: Callable[..., Chat], clock: FakeClock
) -> None:
    """The calls of one ping with 100 rooms (the default cap) and a principal: one Query of
    the partition, then one UpdateItem per row (memberships and listing, 10 in flight),
    then the connection's own. Before, 400 rooms were allowed and written one at a time."""
    chat = chat_with()
    rooms = [f"room-{n}" for n in range(100)]
    a = chat.connect(rooms=rooms, principal="alice")
    assert error_of(chat.call(a, {"action": "joinRoom", "room": "one-more"})) == (
        400,
        "too_many_rooms",
    )
    clock.advance(10)
    calls = calls_of(chat)
    assert chat.call(a, {"action": "ping"}) == OK
    assert calls == ["Query", *["UpdateItem"] * 101, "UpdateItem"]
    expiry = {int(e) for _, _, e in chat.table()}
    assert expiry == {int(clock.now) + chat.runtime.config.ttl_seconds}
    calls.clear()
    assert chat.call(a, {"action": "ping"}) == OK  # the same second: every row is there
    assert calls == ["Query", "UpdateItem"]


def test_a_ping_that_fails_part_way_never_leaves_a_membership_behind_its_connection(
    chat_with: Callable[..., Chat], clock: FakeClock
) -> None:
    """One membership's refresh throttled past every retry: the ping answers 503, and the
    connection's expiry stays where it was. Before, the connection was extended first, and
    the membership left behind expired under a live connection."""
    chat = chat_with()
    a = chat.connect(rooms=["r1", "r2", "r3"])
    clock.advance(30)
    faults = DynamoFaults(chat.runtime.store)
    faults.add("UpdateItem", times=100, matching="ROOM#r2")
    try:
        with short_throttle_backoff():
            assert error_of(chat.call(a, {"action": "ping"})) == (503, "throttled")
    finally:
        faults.close()
    rows = {sk: expires for pk, sk, expires in chat.table() if pk == f"CONN#{a}"}
    assert rows["ROOM#r2"] < int(clock.now) + chat.runtime.config.ttl_seconds  # not refreshed
    assert all(expires >= rows["CONN"] for sk, expires in rows.items() if sk != "CONN"), rows


# -- hole 5: a resume posted 300 frames for one token -------------------------------------


def test_a_resume_is_charged_for_what_it_posts(chat_with: Callable[..., Chat]) -> None:
    """300 frames of ~2 KB went out for one token under a 2/30 limit. The resume still posts
    them all, then takes a token per 32 KB it posted past the first: the bucket is in debt,
    and the next request waits it out."""
    chat = chat_with(rate_limit=RateLimit(2, 30), history_seconds=600)
    a = chat.connect(rooms=["r"])
    backend = Fanout(runtime=chat.runtime)  # backend publishes take no token of a's
    for n in range(300):
        backend.publish({"n": n, "pad": "x" * 2000}, room="r")
    inbox = len(chat.api.connections.inbox(a))
    assert chat.call(a, {"action": "history", "room": "r", "since": 0}) == OK
    resumed = chat.api.connections.inbox(a)[inbox:]
    assert len(resumed) == 301
    assert frames.decode(resumed[-1])["event"] == "history.end"
    tokens = -(-sum(len(raw) for raw in resumed) // ANSWER_BYTES_PER_TOKEN)
    assert tokens > 10
    assert error_of(chat.send(a, "next", room="r")) == (429, "rate_limited")
    retry_after = json.loads(chat.send(a, "next", room="r")["body"])["retry_after"]
    # 2 per 30 s: a token every 15 s, a burst of 2. The resume took one and owes tokens - 1:
    # the next passes once its theoretical arrival time is within the burst again.
    assert retry_after == pytest.approx((tokens - 1) * 15)


# -- a principal multiplying its connections' limits --------------------------------------


def test_a_principal_bucket_is_shared_by_its_connections(chat_with: Callable[..., Chat]) -> None:
    chat = chat_with(rate_limit=RateLimit(10, 1), user_rate_limit=RateLimit(3, 30))
    a = chat.connect(rooms=["r"], principal="alice")  # a $connect takes one of alice's
    b = chat.connect(rooms=["r"], principal="alice")
    c = chat.connect(rooms=["r"], principal="bob")
    assert chat.send(a, "one", room="r") == OK
    before = chat.table()
    assert error_of(chat.send(b, "two", room="r")) == (429, "rate_limited")
    # Refused by alice's bucket, b's own took its token: a repeat costs b too.
    assert [row for row in chat.table() if row[0] != f"CONN#{b}"] == [
        row for row in before if row[0] != f"CONN#{b}"
    ]
    assert chat.send(c, "bob's own", room="r") == OK
    cid = chat.api.connections.open()
    refused = handlers.connect(connect_event(cid, principal="alice"), None)
    assert error_of(refused) == (429, "rate_limited")
    assert not [row for row in chat.table() if row[0] == f"CONN#{cid}"]


def test_a_principal_over_its_connections_cap_is_refused_and_nothing_written(
    chat_with: Callable[..., Chat],
) -> None:
    chat = chat_with(max_connections_per_user=2)
    a = chat.connect(principal="alice")
    chat.connect(principal="alice")
    chat.connect(principal="bob")
    before = chat.table()
    cid = chat.api.connections.open()
    refused = handlers.connect(connect_event(cid, rooms=["r"], principal="alice"), None)
    assert error_of(refused) == (403, "too_many_connections")
    assert chat.table() == before
    assert handlers.disconnect(disconnect_event(a), None) == OK
    assert handlers.connect(connect_event(cid, principal="alice"), None) == OK
