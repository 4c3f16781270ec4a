"""History, resume and idempotent publish: numbering, keeping, resuming, duplicates, faults."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fanout_core import handlers, keys
from fanout_core.config import RateLimit
from fanout_core.errors import ConfigError
from fanout_core.fanout import Fanout
from fanout_core.history import COUNTER_GRACE_SECONDS
from fanout_core.local.management_api import LocalManagementApi
from tests.support import frames
from tests.support.backends import Backend
from tests.support.clock import FakeClock
from tests.support.faults import DynamoFaults, RetryQuotas, short_throttle_backoff
from tests.support.harness import Chat, make_chat

OK = {"statusCode": 200}
WINDOW = 600  # FANOUT_HISTORY_SECONDS of these tests


def error_of(response: dict[str, Any]) -> tuple[int, str]:
    body = frames.check(json.loads(response["body"]), "errorAnswer")
    return response["statusCode"], body["error"]


@pytest.fixture
def chat_with(
    backend: Backend, local_api: LocalManagementApi, clock: FakeClock
) -> Iterator[Callable[..., Chat]]:
    """Chats on new tables; the last one made is the one the handlers run on."""
    made: list[Chat] = []

    def make(**settings: Any) -> Chat:
        settings.setdefault("history_seconds", WINDOW)
        for earlier in made:
            earlier.runtime.close()  # its posts' connections; the handlers move on
        made.append(make_chat(backend, local_api, clock, "gsi_query", **settings))
        return made[-1]

    yield make
    for chat in made:
        chat.runtime.close()


@pytest.fixture
def chat(chat_with: Callable[..., Chat]) -> Chat:
    return chat_with()


def history_rows(chat: Chat, room: str | None = "r") -> dict[int, int]:
    """seq -> expires_at of the scope's history items in the table."""
    rows = chat.harness.rows()
    pk = keys.history_pk(keys.scope_of(room))
    return {int(sk): expires for (key, sk), expires in rows.items() if key == pk}


def resume(chat: Chat, cid: str, **request: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Ask history; the frames it posted, and its history.end."""
    before = len(chat.frames(cid))
    assert chat.call(cid, {"action": "history", **request}) == OK
    got = chat.frames(cid)[before:]
    assert got, "no history.end"
    *replayed, end = got
    assert end["event"] == "history.end", got
    return replayed, end


def seqs(received: list[dict[str, Any]]) -> list[int]:
    return [frame["seq"] for frame in received]


# -- numbering and keeping ---------------------------------------------------------------


def test_frames_to_a_room_are_numbered_and_kept_before_any_post(chat: Chat) -> None:
    a = chat.connect(rooms=["r"])
    b = chat.connect(rooms=["r"])
    kept_at_post: list[set[int]] = []
    chat.api.on_post = lambda cid, status: kept_at_post.append(set(history_rows(chat)))
    for n in range(3):
        assert chat.send(a, f"m{n}", room="r") == OK
    chat.api.on_post = None
    for cid in (a, b):
        assert [(f["body"], f["seq"]) for f in chat.frames(cid)] == [
            ("m0", 1),
            ("m1", 2),
            ("m2", 3),
        ]
    # Each post found its frame, and every earlier one, already in the table.
    assert [min(len(kept), 3) for kept in kept_at_post] == [1, 1, 2, 2, 3, 3]
    now = int(chat.clock.now)
    assert history_rows(chat) == {1: now + WINDOW, 2: now + WINDOW, 3: now + WINDOW}
    counter = (keys.counter_pk("ROOM#r"), keys.COUNTER_SK)
    assert chat.harness.rows()[counter] == now + WINDOW + COUNTER_GRACE_SECONDS


def test_each_scope_has_its_own_numbers_and_users_and_connections_none(chat: Chat) -> None:
    a = chat.connect(rooms=["r", "s"], principal="alice")
    fanout = Fanout(runtime=chat.runtime)
    assert fanout.publish({"n": 1}, room="r").seq == 1
    assert fanout.publish({"n": 2}, room="s").seq == 1
    assert fanout.publish({"n": 3}).seq == 1  # everyone
    assert fanout.publish({"n": 4}, room="r").seq == 2
    assert fanout.publish({"n": 5}, user="alice").seq is None
    assert fanout.publish({"n": 6}, connections=[a]).seq is None
    got = [(f["data"]["n"], f["room"], f.get("seq")) for f in chat.frames(a)]
    assert got == [
        (1, "r", 1),
        (2, "s", 1),
        (3, None, 1),
        (4, "r", 2),
        (5, None, None),
        (6, None, None),
    ]
    assert [f["data"]["n"] for f in fanout.history("r")] == [1, 4]
    assert [f["data"]["n"] for f in fanout.history(None)] == [3]
    assert [f["data"]["n"] for f in fanout.history("r", since=1)] == [4]


# dynalite only: moto creates an item that UpdateItem does not find without a lock, so two
# racing first ADDs both answer 1 there (moto/dynamodb/models update_item); DynamoDB and
# dynalite apply each UpdateItem atomically, which is what the counter relies on.
@pytest.mark.parametrize("backend", ["dynalite"], indirect=True)
def test_racing_publishes_never_share_a_seq(chat: Chat) -> None:
    chat.connect(rooms=["r"])
    fanout = Fanout(runtime=chat.runtime)
    got: list[int | None] = []
    lock = threading.Lock()

    def publish(worker: int) -> None:
        for n in range(5):
            seq = fanout.publish({"w": worker, "n": n}, room="r").seq
            with lock:
                got.append(seq)

    threads = [threading.Thread(target=publish, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(s for s in got if s is not None) == list(range(1, 31))
    assert sorted(history_rows(chat)) == list(range(1, 31))


# -- resume ------------------------------------------------------------------------------


def test_resume_after_since_then_history_end(chat: Chat) -> None:
    a = chat.connect(rooms=["r"])
    for n in range(5):
        chat.send(a, f"m{n}", room="r")
    b = chat.connect(rooms=["r"])  # a reconnect: a new connection
    replayed, end = resume(chat, b, room="r", since=2)
    assert seqs(replayed) == [3, 4, 5]
    assert replayed == chat.frames(a)[2:]  # as first sent: same ids, same bytes
    assert (end["seq"], end["complete"], end["room"], end["from"]) == (5, True, "r", None)
    assert end["epoch"] > 0
    replayed, end = resume(chat, b, room="r", last=2)
    assert (seqs(replayed), end["complete"]) == ([4, 5], True)
    replayed, end = resume(chat, b, room="r", since=5, epoch=end["epoch"])
    assert (replayed, end["complete"]) == ([], True)
    replayed, end = resume(chat, b, room="r", last=0)
    assert (replayed, end["seq"], end["complete"]) == ([], 5, True)


def test_complete_is_false_exactly_when_something_after_since_is_gone(
    chat_with: Callable[..., Chat],
) -> None:
    chat = chat_with(history_max=3)
    a = chat.connect(rooms=["r"])
    for n in range(5):
        chat.send(a, f"m{n}", room="r")
    # Trimmed: only the latest 3 are served; frames 1 and 2 stay in the table until their TTL.
    replayed, end = resume(chat, a, room="r", since=0)
    assert (seqs(replayed), end["complete"]) == ([3, 4, 5], False)
    replayed, end = resume(chat, a, room="r", since=1)
    assert (seqs(replayed), end["complete"]) == ([3, 4, 5], False)
    assert resume(chat, a, room="r", since=2)[1]["complete"] is True
    assert sorted(history_rows(chat)) == [1, 2, 3, 4, 5]
    # Expired: the window passes for the first frames, then two more are sent.
    chat.clock.advance(WINDOW)
    chat.send(a, "m5", room="r")
    chat.send(a, "m6", room="r")
    replayed, end = resume(chat, a, room="r", since=4)
    assert (seqs(replayed), end["seq"], end["complete"]) == ([6, 7], 7, False)
    replayed, end = resume(chat, a, room="r", since=5)
    assert (seqs(replayed), end["complete"]) == ([6, 7], True)
    # A since the room never reached, or of another epoch, is not trusted.
    assert resume(chat, a, room="r", since=99)[1]["complete"] is False
    replayed, end = resume(chat, a, room="r", since=5, epoch=end["epoch"] + 1)
    assert (seqs(replayed), end["complete"]) == ([6, 7], False)


def test_a_counter_that_started_again_has_a_new_epoch(chat: Chat) -> None:
    a = chat.connect(rooms=["r"])
    chat.send(a, "old", room="r")
    _, first = resume(chat, a, room="r", last=1)
    chat.clock.advance(WINDOW + COUNTER_GRACE_SECONDS + 1)
    assert chat.call(a, {"action": "ping"}) != OK  # the connection expired as well
    assert handlers.sweep({}, None)["connections"] == 1
    assert chat.harness.rows() == {}  # counter and frame too
    b = chat.connect(rooms=["r"])
    chat.send(b, "new", room="r")
    replayed, end = resume(chat, b, room="r", since=first["seq"], epoch=first["epoch"])
    assert ([f["body"] for f in replayed], end["seq"], end["complete"]) == (["new"], 1, False)
    assert end["epoch"] > first["epoch"]


def test_everyone_has_a_history_too(chat: Chat) -> None:
    a = chat.connect()
    chat.send(a, "one")
    chat.send(a, "two")
    replayed, end = resume(chat, a, since=1)
    assert ([f["body"] for f in replayed], end["room"], end["complete"]) == (["two"], None, True)


def test_a_big_backlog_is_posted_in_order_page_by_page(chat_with: Callable[..., Chat]) -> None:
    chat = chat_with(history_max=1000)
    a = chat.connect(rooms=["r"])
    fanout = Fanout(runtime=chat.runtime)
    for n in range(250):
        fanout.publish(n, room="r")
    b = chat.connect(rooms=["r"])
    queries: list[int] = []
    client = chat.runtime.store.models.client
    client.meta.events.register(
        "before-parameter-build.dynamodb.Query", lambda params, **_: queries.append(1)
    )
    replayed, end = resume(chat, b, room="r", since=0)
    assert [f["data"] for f in replayed] == list(range(250))
    assert (end["seq"], end["complete"]) == (250, True)
    assert len(queries) == 3  # pages of 100, 100 and 50: none empty after the last
    assert len(chat.frames(a)) == 250


def test_history_needs_membership_history_on_and_a_valid_request(
    chat_with: Callable[..., Chat],
) -> None:
    chat = chat_with()
    a = chat.connect(rooms=["r"])
    chat.send(a, "m", room="r")
    stranger = chat.connect()
    assert error_of(chat.call(stranger, {"action": "history", "room": "r", "since": 0})) == (
        403,
        "forbidden",
    )
    assert chat.frames(stranger) == []
    for bad in (
        {},
        {"since": 1, "last": 1},
        {"since": -1},
        {"since": "1"},
        {"since": True},
        {"last": 1.5},
        {"since": 0, "epoch": -3},
        {"since": 2**60},
    ):
        response = chat.call(a, {"action": "history", "room": "r", **bad})
        assert error_of(response) == (400, "invalid_history"), bad
    assert error_of(chat.call(a, {"action": "history", "room": "no#room", "since": 0})) == (
        400,
        "invalid_room",
    )
    off = chat_with(history_seconds=0)
    c = off.connect(rooms=["r"])
    assert error_of(off.call(c, {"action": "history", "room": "r", "since": 0})) == (
        400,
        "no_history",
    )
    with pytest.raises(ConfigError, match="FANOUT_HISTORY_SECONDS"):
        list(Fanout(runtime=off.runtime).history("r"))


def test_with_a_rate_limit_a_history_request_takes_a_token(
    chat_with: Callable[..., Chat],
) -> None:
    chat = chat_with(rate_limit=RateLimit(2, 10))
    a = chat.connect(rooms=["r"])
    assert chat.send(a, "m", room="r") == OK  # the first token
    replayed, _ = resume(chat, a, room="r", since=0)  # the second
    assert seqs(replayed) == [1]
    posts, frames_before = chat.api.total("POST"), len(chat.frames(a))
    response = chat.call(a, {"action": "history", "room": "r", "since": 0})
    assert error_of(response) == (429, "rate_limited")
    # A bucket of 2 refilled at 2 per 10 s: the next token comes 5 s after the burst.
    assert 4.99 <= json.loads(response["body"])["retry_after"] <= 5.0
    assert chat.api.total("POST") == posts  # nothing posted, not even history.end
    assert len(chat.frames(a)) == frames_before
    chat.clock.advance(5)
    replayed, end = resume(chat, a, room="r", since=0)
    assert (seqs(replayed), end["complete"]) == ([1], True)
    # A request refused for another reason costs no token.
    chat.clock.advance(10)
    for _ in range(3):
        assert error_of(chat.call(a, {"action": "history", "room": "r"})) == (
            400,
            "invalid_history",
        )
    assert resume(chat, a, room="r", last=1)[1]["complete"] is True
    assert resume(chat, a, room="r", last=1)[1]["complete"] is True


# -- idempotent publish -------------------------------------------------------------------


def test_a_second_publish_with_a_key_is_a_duplicate_within_the_window(chat: Chat) -> None:
    a = chat.connect(rooms=["r"], principal="alice")
    fanout = Fanout(runtime=chat.runtime)
    first = fanout.publish({"order": 1}, room="r", idempotency_key="order-1")
    posts = chat.api.total("POST")
    again = fanout.publish({"order": 1}, room="r", idempotency_key="order-1")
    assert (again.duplicate, again.message_id, again.delivered) == (True, first.message_id, 0)
    assert chat.api.total("POST") == posts
    # Another audience is another publish.
    assert not fanout.publish({"order": 1}, user="alice", idempotency_key="order-1").duplicate
    assert fanout.publish({"order": 1}, user="alice", idempotency_key="order-1").duplicate
    assert [f.get("seq") for f in chat.frames(a)] == [1, None]
    chat.clock.advance(WINDOW)  # the dedup window (the history window, unless set)
    assert not fanout.publish({"order": 1}, room="r", idempotency_key="order-1").duplicate
    assert [f.get("seq") for f in chat.frames(a)] == [1, None, 2]
    with pytest.raises(ValueError, match="idempotency key"):
        fanout.publish({}, room="r", idempotency_key="has space")


def test_a_clients_key_is_its_users_across_reconnects_or_its_connections(
    chat_with: Callable[..., Chat],
) -> None:
    chat = chat_with(history_seconds=0, dedup_seconds=30)  # keys work without history
    listener = chat.connect(rooms=["r"])
    alice = chat.connect(rooms=["r"], principal="alice")
    body = {"action": "sendMessage", "room": "r", "text": "hi", "id": "k1"}
    assert chat.call(alice, body) == OK
    again = chat.connect(rooms=["r"], principal="alice")  # alice reconnected
    assert chat.call(again, body) == OK
    bob = chat.connect(rooms=["r"], principal="bob")
    assert chat.call(bob, body) == OK  # bob's k1 is his own
    anonymous = [chat.connect(rooms=["r"]) for _ in range(2)]
    for cid in (*anonymous, anonymous[0]):
        assert chat.call(cid, body) == OK
    assert [f["from"] for f in chat.frames(listener)] == [alice, bob, *anonymous]
    assert error_of(chat.call(alice, {**body, "id": "x" * 65})) == (400, "invalid_id")
    assert error_of(chat.call(alice, {**body, "id": 5})) == (400, "invalid_id")
    chat.clock.advance(30)
    assert chat.call(again, body) == OK
    assert len(chat.frames(listener)) == 5


def test_a_publish_that_fails_releases_its_key(chat: Chat, monkeypatch: pytest.MonkeyPatch) -> None:
    a = chat.connect(rooms=["r"])
    fanout = Fanout(runtime=chat.runtime)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the room's read failed")

    with monkeypatch.context() as patch:
        patch.setattr(chat.runtime.strategy, "fanout", broken)
        with pytest.raises(RuntimeError):
            fanout.publish({"n": 1}, room="r", idempotency_key="k")
    retry = fanout.publish({"n": 1}, room="r", idempotency_key="k")
    assert (retry.duplicate, retry.delivered, retry.seq) == (False, 1, 2)
    # The failed publish took seq 1 and kept its frame before the read failed.
    assert seqs(chat.frames(a)) == [2]


# -- faults: a throttled counter or history write ------------------------------------------


@pytest.fixture
def dynamo_faults(chat: Chat) -> Iterator[DynamoFaults]:
    faults = DynamoFaults(chat.runtime.store)
    quotas = RetryQuotas()
    with short_throttle_backoff(), quotas.active():
        yield faults
    faults.close()


@pytest.mark.parametrize("operation", ["UpdateItem", "PutItem"])
def test_a_throttled_key_or_counter_answers_503_and_changes_nothing(
    chat: Chat, dynamo_faults: DynamoFaults, operation: str
) -> None:
    """The key's put (with an id) or the counter's update is throttled past every retry."""
    a = chat.connect(rooms=["r"])
    chat.send(a, "m0", room="r")
    rows, posts = chat.harness.rows(), chat.api.total("POST")
    dynamo_faults.add(operation, times=20)
    body = {"action": "sendMessage", "room": "r", "text": "m1", "id": "k1"}
    assert error_of(chat.call(a, body)) == (503, "throttled")
    dynamo_faults.clear()
    assert (chat.harness.rows(), chat.api.total("POST")) == (rows, posts)
    assert chat.call(a, body) == OK  # a retry publishes: no key was left behind
    replayed, end = resume(chat, a, room="r", since=0)
    assert ([f["body"] for f in replayed], end["complete"]) == (["m0", "m1"], True)


def test_a_throttled_frame_write_posts_nothing_and_its_gap_is_never_complete(
    chat: Chat, dynamo_faults: DynamoFaults
) -> None:
    a = chat.connect(rooms=["r"])
    chat.send(a, "m0", room="r")
    posts = chat.api.total("POST")
    dynamo_faults.add("PutItem", times=20)  # no id: the frame's put is the send's only put
    assert error_of(chat.send(a, "m1", room="r")) == (503, "throttled")
    dynamo_faults.clear()
    assert chat.api.total("POST") == posts  # nothing posted
    assert sorted(history_rows(chat)) == [1]  # seq 2 was taken, never kept
    # With an id: its key is claimed, then the frame's put is throttled; the key is released.
    real_keep = chat.runtime.history.keep

    def throttled_keep(scope: str, seq: int, frame: bytes) -> None:
        dynamo_faults.add("PutItem", times=20)
        try:
            real_keep(scope, seq, frame)
        finally:
            dynamo_faults.clear()

    body = {"action": "sendMessage", "room": "r", "text": "m2", "id": "k2"}
    chat.runtime.history.keep = throttled_keep  # type: ignore[method-assign]
    assert error_of(chat.call(a, body)) == (503, "throttled")
    chat.runtime.history.keep = real_keep  # type: ignore[method-assign]
    assert chat.api.total("POST") == posts
    assert chat.call(a, body) == OK  # the retry publishes, as seq 4
    replayed, end = resume(chat, a, room="r", since=1)
    assert (seqs(replayed), end["seq"], end["complete"]) == ([4], 4, False)
    replayed, end = resume(chat, a, room="r", since=3)
    assert (seqs(replayed), end["complete"]) == ([4], True)


# -- what history costs a send ------------------------------------------------------------


def test_with_history_off_a_send_makes_todays_calls_and_on_two_more(
    chat_with: Callable[..., Chat], backend: Backend
) -> None:
    calls: list[str] = []

    def attach(chat: Chat) -> None:
        client = chat.runtime.store.models.client
        client.meta.events.register(
            "before-parameter-build.dynamodb", lambda model, **_: calls.append(model.name)
        )

    off = chat_with(history_seconds=0, page_size=None)
    a = off.connect(rooms=["r"])
    attach(off)
    off.send(a, "m", room="r")
    assert calls == ["GetItem", "Query"]  # the membership, the room's page: as before
    calls.clear()
    on = chat_with(page_size=None)
    b = on.connect(rooms=["r"])
    attach(on)
    on.send(b, "m", room="r")
    assert calls == ["GetItem", "UpdateItem", "PutItem", "Query"]  # + the counter, the frame
    calls.clear()
    on.call(b, {"action": "sendMessage", "room": "r", "text": "k", "id": "k"})
    assert calls == ["GetItem", "PutItem", "UpdateItem", "PutItem", "Query"]  # + the key
