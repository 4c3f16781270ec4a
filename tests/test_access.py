"""Who may do what: the policy hook, the built-ins, the rate limit, presence and its events."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fanout_core import handlers
from fanout_core.config import FanoutConfig, RateLimit
from fanout_core.errors import ConfigError
from fanout_core.fanout import Fanout
from fanout_core.keys import CONNECTION_ID_MAX, PRINCIPAL_MAX, ROOM_NAME_MAX
from fanout_core.local.management_api import LocalManagementApi
from fanout_core.message import MAX_PAYLOAD_BYTES, Message
from fanout_core.outgoing import outgoing
from fanout_core.policy import (
    AccessRequest,
    Decision,
    authenticated,
    claimed_rooms,
    deny,
    load_policy,
    open_policy,
    owner_rooms,
)
from fanout_core.presence import presence_frames
from fanout_core.reads import Member
from fanout_core.runtime import set_runtime
from tests.support import frames
from tests.support.backends import STRATEGIES, Backend
from tests.support.clock import FakeClock
from tests.support.events import connect_event
from tests.support.harness import Chat, make_chat

OK = {"statusCode": 200}


def error_of(response: dict[str, Any]) -> tuple[int, str, dict[str, Any]]:
    body = json.loads(response["body"])
    frames.check(body, "errorAnswer")
    return response["statusCode"], body["error"], body


def request(action: Any, room: str | None = None, **fields: Any) -> AccessRequest:
    return AccessRequest(action, "L0SM9cOFvHcCIhw=", room=room, **fields)


# -- the built-in policies -------------------------------------------------------------


def test_open_lets_anyone_in_and_members_see_presence() -> None:
    for action in ("connect", "join", "send"):
        assert open_policy(request(action, "r")).allowed
    assert open_policy(request("send")).allowed  # to everyone
    assert open_policy(request("presence", "r", is_member=True)).allowed
    refused = open_policy(request("presence", "r", is_member=False))
    assert refused == Decision(False, "only members of 'r' may ask its presence")


def test_authenticated_needs_a_principal() -> None:
    assert not authenticated(request("connect")).allowed
    assert "principal" in authenticated(request("send", "r")).reason
    assert authenticated(request("join", "r", principal="alice")).allowed
    assert not authenticated(request("presence", "r", principal="a", is_member=False)).allowed


@pytest.mark.parametrize(
    ("action", "room", "allowed"),
    [
        ("connect", None, True),
        ("join", "lobby", True),
        ("join", "ops", True),
        ("join", "user:alice", True),  # its own user room
        ("join", "user:bob", False),
        ("join", "payroll", False),
        ("send", "lobby", True),
        ("send", None, False),  # everyone
        ("send", "payroll", False),
        ("join", "bad#name", False),  # named in the claim, but no valid room
        ("presence", "lobby", True),
        ("presence", "payroll", False),
    ],
)
def test_owner_rooms(action: Any, room: str | None, allowed: bool) -> None:
    context = {"rooms": "lobby, ops,bad#name,,x y"}
    got = owner_rooms(request(action, room, principal="alice", context=context, is_member=True))
    assert got.allowed is allowed, got


@pytest.mark.parametrize(
    ("action", "room", "reason"),
    [
        ("send", None, "send is not allowed for everyone"),
        ("history", None, "history is not allowed for everyone"),
        (
            "join",
            "payroll",
            "join is not allowed for room 'payroll': it is not one of this connection's rooms",
        ),
        (
            "send",
            "user:bob",
            "send is not allowed for room 'user:bob': it is not one of this connection's rooms",
        ),
        (
            "presence",
            "ops",
            "presence is not allowed for room 'ops': it is not one of this connection's rooms",
        ),
    ],
)
def test_owner_rooms_says_which_action_it_denied_where(
    action: Any, room: str | None, reason: str
) -> None:
    context = {"rooms": "lobby"}
    got = owner_rooms(request(action, room, principal="alice", context=context, is_member=True))
    assert got == Decision(False, reason)


@pytest.mark.parametrize(
    ("claim", "rooms"),
    [
        ('["a,b", "lobby", "bad#name", 7]', {"a,b", "lobby"}),
        ('["unclosed', set()),
        ('{"lobby": 1}', set()),
        ("a,b", {"a", "b"}),
    ],
)
def test_a_rooms_claim_may_be_a_json_array_for_names_with_commas(
    claim: str, rooms: set[str]
) -> None:
    got = claimed_rooms(request("join", "x", principal="alice", context={"rooms": claim}))
    assert got == {*rooms, "user:alice"}


def test_the_docs_show_the_built_in_policies_as_they_are() -> None:
    """docs/access.md offers the built-ins to copy: the copy is the code that runs."""
    page = (Path(__file__).parent.parent / "docs" / "access.md").read_text()
    for policy in (open_policy, authenticated, claimed_rooms, owner_rooms):
        assert inspect.getsource(policy) in page, policy.__name__


def test_loading_policies_by_name_and_by_path() -> None:
    assert load_policy("open") is open_policy
    assert load_policy("owner_rooms") is owner_rooms
    assert load_policy("tests.test_access:deny_payroll") is deny_payroll
    for bad in ("nope", "tests.test_access:missing", "no_such_module:f", "tests.test_access:OK"):
        with pytest.raises(ConfigError) as raised:
            load_policy(bad)
        assert raised.value.variable == "FANOUT_POLICY"
    config = FanoutConfig.from_env({"FANOUT_POLICY": "authenticated", "FANOUT_RATE_LIMIT": "10/1"})
    assert (config.policy, config.rate_limit) == ("authenticated", RateLimit(10, 1.0))
    for raw in ("10", "0/1", "1/0", "a/b", "5/-1"):
        with pytest.raises(ConfigError, match="FANOUT_RATE_LIMIT"):
            FanoutConfig.from_env({"FANOUT_RATE_LIMIT": raw})


def deny_payroll(request: AccessRequest) -> Decision:
    """A custom policy: nobody touches payroll; the rest as open."""
    if request.room == "payroll":
        return deny("payroll is closed")
    return open_policy(request)


# -- the hook in the handlers ----------------------------------------------------------


def rows(chat: Chat) -> list[tuple[str, str]]:
    return sorted((row.connection_id, row.sk) for row in chat.runtime.store.rows())


def test_a_denied_action_answers_403_with_the_reason_and_changes_nothing(
    chat_with: Callable[..., Chat],
) -> None:
    chat = chat_with(policy=deny_payroll)
    a = chat.connect(rooms=["lobby"])
    before = rows(chat)
    assert error_of(chat.call(a, {"action": "joinRoom", "room": "payroll"}))[:2] == (
        403,
        "forbidden",
    )
    status, code, body = error_of(
        chat.call(a, {"action": "sendMessage", "room": "payroll", "text": "x"})
    )
    assert (status, code, body["message"]) == (403, "forbidden", "payroll is closed")
    assert rows(chat) == before
    assert chat.api.total("POST") == 0
    # A denied ?room= refuses the connection: nothing is written.
    cid = chat.api.connections.open()
    status, code, _ = error_of(
        handlers.connect(connect_event(cid, rooms=["lobby", "payroll"]), None)
    )
    assert (status, code) == (403, "forbidden")
    assert rows(chat) == before


def raises(request: AccessRequest) -> Decision:
    raise RuntimeError("the policy's own bug")


@pytest.mark.parametrize(
    "policy",
    [raises, lambda r: True, lambda r: None, lambda r: "allow", lambda r: Decision("yes", "")],  # type: ignore[arg-type]
    ids=["raises", "True", "None", "a string", "not a bool"],
)
def test_a_policy_that_fails_fails_closed(
    chat_with: Callable[..., Chat], policy: Callable[[AccessRequest], Decision]
) -> None:
    chat = chat_with(policy=policy)
    cid = chat.api.connections.open()
    status, code, _ = error_of(handlers.connect(connect_event(cid, rooms=["r"]), None))
    assert (status, code) == (500, "policy_failed")
    assert rows(chat) == []


def test_identity_comes_from_the_authorizer_never_from_the_body(
    chat_with: Callable[..., Chat],
) -> None:
    chat = chat_with(policy=owner_rooms)
    a = chat.connect(principal="alice", claims={"rooms": "lobby"})
    forged = {"action": "joinRoom", "room": "ops", "rooms": "ops", "principal": "root"}
    assert error_of(chat.call(a, forged))[:2] == (403, "forbidden")
    assert chat.call(a, {"action": "joinRoom", "room": "lobby"}) == OK
    assert chat.call(a, {"action": "joinRoom", "room": "user:alice"}) == OK
    assert error_of(chat.call(a, {"action": "sendMessage", "text": "all"}))[:2] == (
        403,
        "forbidden",
    )
    assert chat.call(a, {"action": "sendMessage", "text": "hi", "room": "lobby"}) == OK
    assert [f["body"] for f in chat.frames(a)] == ["hi"]


def test_a_fanout_builds_its_runtime_with_the_policy_it_is_given(
    backend: Backend, local_api: LocalManagementApi, clock: FakeClock
) -> None:
    chat = make_chat(backend, local_api, clock, "gsi_query")
    fanout = Fanout(chat.runtime.config, policy=deny_payroll, clock=clock)
    assert fanout.runtime.policy is deny_payroll
    previous = set_runtime(fanout.runtime)  # the handlers now run on it
    try:
        a = chat.connect(rooms=["lobby"])
        assert error_of(chat.call(a, {"action": "joinRoom", "room": "payroll"}))[:2] == (
            403,
            "forbidden",
        )
        assert fanout.publish({"n": 1}, room="payroll").room == "payroll"  # never asked
    finally:
        set_runtime(previous)
        fanout.close()
    with pytest.raises(ValueError, match="not both"):
        Fanout(runtime=chat.runtime, policy=deny_payroll)


# -- the rate limit --------------------------------------------------------------------


@pytest.fixture
def counted_calls(chat_with: Callable[..., Chat]) -> Callable[[Chat], list[str]]:
    recorded: list[list[str]] = []

    def attach(chat: Chat) -> list[str]:
        calls: list[str] = []
        recorded.append(calls)
        client = chat.runtime.store.models.client

        def record(model: Any, **kwargs: Any) -> None:
            calls.append(model.name)

        client.meta.events.register("before-parameter-build.dynamodb", record)
        return calls

    return attach


def test_over_the_rate_a_send_answers_429_and_fans_out_nothing(
    chat_with: Callable[..., Chat], counted_calls: Callable[[Chat], list[str]]
) -> None:
    chat = chat_with(rate_limit=RateLimit(3, 10))
    a = chat.connect(rooms=["r"])
    calls = counted_calls(chat)
    for n in range(3):  # a burst of three: one conditional update each
        calls.clear()
        assert chat.send(a, f"m{n}", room="r") == OK
        assert calls == ["GetItem", "UpdateItem", "Query"], n
    posts = chat.api.total("POST")
    calls.clear()
    status, code, body = error_of(chat.send(a, "one too many", room="r"))
    assert (status, code) == (429, "rate_limited")
    # Refused: the one update fails its condition; a read of the bucket gives retry_after.
    assert calls == ["GetItem", "UpdateItem", "GetItem"]
    # A bucket of 3 refilled at 3 per 10 s: the next token comes 10 s / 3 after the burst.
    assert 3.33 <= body["retry_after"] <= 3.34
    assert chat.api.total("POST") == posts
    chat.clock.advance(3.34)
    assert chat.send(a, "later", room="r") == OK
    assert [f["body"] for f in chat.frames(a)] == ["m0", "m1", "m2", "later"]
    assert (a, "RATE") in rows(chat)
    # A send slower than the rate costs one conditional write, on top of today's reads.
    chat.clock.advance(100)
    calls.clear()
    assert chat.send(a, "slow", room="r") == OK
    assert calls == ["GetItem", "UpdateItem", "Query"]
    handlers.disconnect(json_disconnect(a), None)
    assert rows(chat) == []  # the bucket goes with the connection


def test_a_container_that_never_saw_the_bucket_pays_one_more_update_in_a_burst(
    chat_with: Callable[..., Chat], counted_calls: Callable[[Chat], list[str]]
) -> None:
    """Another container's sends left the bucket mid-burst: "idle" fails, "burst" passes."""
    chat = chat_with(rate_limit=RateLimit(3, 10))
    a = chat.connect(rooms=["r"])
    assert chat.send(a, "first", room="r") == OK
    limiter = chat.runtime.limiter
    assert limiter is not None
    limiter._seen.clear()  # what a fresh container knows
    calls = counted_calls(chat)
    assert chat.send(a, "second", room="r") == OK
    assert calls == ["GetItem", "UpdateItem", "UpdateItem", "Query"]
    calls.clear()
    assert chat.send(a, "third", room="r") == OK  # now it knows
    assert calls == ["GetItem", "UpdateItem", "Query"]
    assert error_of(chat.send(a, "fourth", room="r"))[:2] == (429, "rate_limited")
    handlers.disconnect(json_disconnect(a), None)
    b = chat.connect(rooms=["r"])
    assert chat.send(b, "a new connection has a full bucket", room="r") == OK


def json_disconnect(cid: str) -> dict[str, Any]:
    from tests.support.events import disconnect_event

    return disconnect_event(cid)


def calls_of(calls: list[str], action: Callable[[], object]) -> list[str]:
    calls.clear()
    action()
    made = list(calls)
    calls.clear()
    return made


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_with_open_and_no_rate_limit_a_send_makes_todays_calls(
    chat_with: Callable[..., Chat], counted_calls: Callable[[Chat], list[str]], strategy: str
) -> None:
    """The handler adds to the fan-out's own reads only the sender's membership, as before
    access control: the policy `open` and an absent rate limit cost no call."""
    chat = chat_with(strategy, page_size=None)  # 1 MB pages: one per read
    a = chat.connect(rooms=["r"])
    chat.connect(rooms=["r"])
    chat.connect()
    calls = counted_calls(chat)

    def fanout(message: Message) -> None:
        chat.runtime.strategy.fanout(outgoing(message))
        if chat.pump is not None:
            chat.pump.drain()  # as a send does: the workers' reads are the fan-out's too

    to_room = calls_of(calls, lambda: chat.send(a, "room", room="r"))
    assert to_room == ["GetItem", *calls_of(calls, lambda: fanout(Message(a, "room", "r")))]
    to_all = calls_of(calls, lambda: chat.send(a, "all"))
    assert to_all == calls_of(calls, lambda: fanout(Message(a, "all")))  # no read of the sender
    if strategy == "gsi_query":
        assert to_room == ["GetItem", "Query"]  # the membership, the room's one page
        assert to_all == ["Query"] * 16  # the everyone-shards


# -- presence ---------------------------------------------------------------------------


def test_presence_frames_split_under_the_limit_with_the_exact_count() -> None:
    # The longest room name, ids and principals: the frames' margin is what the check meets.
    room = "r" * ROOM_NAME_MAX
    members = [Member(f"{i:0{CONNECTION_ID_MAX}d}", f"{i:0{PRINCIPAL_MAX}d}") for i in range(3000)]
    parts = presence_frames(room, members)
    assert len(parts) > 1
    decoded = [frames.decode(part) for part in parts]
    assert all(len(part) < MAX_PAYLOAD_BYTES for part in parts)
    assert [f["part"] for f in decoded] == list(range(1, len(parts) + 1))
    assert {f["parts"] for f in decoded} == {len(parts)}
    assert {f["count"] for f in decoded} == {3000}
    listed = [m["connection_id"] for f in decoded for m in f["members"]]
    assert listed == [m.connection_id for m in members]
    assert presence_frames("empty", [])[0].count(b'"members":[]') == 1


def test_presence_lists_the_live_members_to_a_member_only(chat_with: Callable[..., Chat]) -> None:
    chat = chat_with()
    a = chat.connect(rooms=["r"], principal="alice")
    b = chat.connect(rooms=["r"])
    stranger = chat.connect()
    chat.clock.advance(1)
    assert chat.call(a, {"action": "presence", "room": "r"}) == OK
    (frame,) = chat.frames(a)
    by_id = sorted(frame["members"], key=lambda m: str(m["connection_id"]))
    expected: list[dict[str, Any]] = [
        {"connection_id": a, "principal": "alice"},
        {"connection_id": b, "principal": None},
    ]
    assert by_id == sorted(expected, key=lambda m: str(m["connection_id"]))
    assert (frame["count"], frame["room"], frame["from"]) == (2, "r", None)
    assert chat.frames(b) == []
    assert error_of(chat.call(stranger, {"action": "presence", "room": "r"}))[:2] == (
        403,
        "forbidden",
    )
    assert chat.frames(stranger) == []


def presence_events(chat: Chat, cid: str) -> list[tuple[str, str]]:
    return [
        (f["event"], f["data"]["connection_id"])
        for f in chat.frames(cid)
        if f["event"].startswith("presence.")
    ]


def test_presence_events_reach_the_other_live_members(chat_with: Callable[..., Chat]) -> None:
    chat = chat_with(presence_events=True)
    a = chat.connect(rooms=["r"])
    b = chat.connect(rooms=["r"])  # joins on $connect: it is not posted its own join
    assert presence_events(chat, a) == [("presence.join", b)]
    assert presence_events(chat, b) == []
    assert chat.row_ids() == {a, b}  # no 410 for the connection still being accepted
    c = chat.connect()
    assert chat.call(c, {"action": "joinRoom", "room": "r"}) == OK
    assert chat.call(c, {"action": "leaveRoom", "room": "r"}) == OK
    assert presence_events(chat, a)[1:] == [("presence.join", c), ("presence.leave", c)]
    chat.disconnect(b)
    assert presence_events(chat, a)[-1] == ("presence.leave", b)
    d = chat.connect(rooms=["r"])
    chat.drop(d)  # gone without a $disconnect: the next post to it answers 410
    assert chat.send(a, "anyone?", room="r") == OK
    assert presence_events(chat, a)[-2:] == [("presence.join", d), ("presence.leave", d)]
    assert chat.row_ids() == {a, c}
    assert presence_events(chat, c) == []  # it had left r before anything else happened


def test_a_presence_event_that_fails_fails_nothing_else(
    chat_with: Callable[..., Chat],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Best effort: a $connect whose rows are written is not refused for its announcement."""
    chat = chat_with(presence_events=True)
    a = chat.connect(rooms=["r"])
    strategy = chat.runtime.presence.strategy
    assert strategy is not None

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the room's read is throttled")

    monkeypatch.setattr(strategy, "fanout", broken)
    b = chat.connect(rooms=["r"])  # answers 200: asserted by connect
    assert chat.call(b, {"action": "leaveRoom", "room": "r"}) == OK
    chat.disconnect(a)
    assert chat.row_ids() == {b}
    assert presence_events(chat, a) == []
    assert caplog.text.count("could not announce") == 3
