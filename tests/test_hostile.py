"""Hostile input: Hypothesis-made Lambda events against every handler.

Each example starts from the same table: A (in room ``r``) and B (in ``r`` and ``r-1``) are
live, C (in ``r``) dropped without a $disconnect. An event with any field missing, mistyped
or hostile (invalid JSON, JSON that is no object, huge or unicode text, lone surrogates, room
names with ``#`` or control characters, another connection's id, bad base64) goes to one
handler. The handler never raises and answers either the documented success, with its
documented effect, or a 4xx with a JSON error; a 500 for client input is a failure. A refused
request changes nothing in the table and posts nothing. Room isolation holds throughout: no
frame for a room reaches a connection outside it.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fanout_core import handlers, keys
from fanout_core.events import MAX_BODY_BYTES
from fanout_core.local.sqs_pump import SqsEventSource
from fanout_core.message import MAX_PAYLOAD_BYTES, Message
from fanout_core.runtime import Runtime
from tests.support import frames
from tests.support.backends import STRATEGIES
from tests.support.clock import FakeClock
from tests.support.events import connect_event, disconnect_event, message_event
from tests.support.harness import Harness
from tests.support.hyp_strategies import (
    ROOMS,
    ROUTES,
    message_texts,
    profile,
    room_values,
    scaled,
    sqs_events,
    texts,
    websocket_events,
)
from tests.support.machine import PROPERTY_BACKENDS, START, TTL, no_sleep, set_post_timeout

A, B, C = "AAAAhostileA0001", "BBBBhostileB0002", "CCCChostileC0003"
NEVER = "NeverConnected0004"  # a valid id that has no row
KNOWN = (A, B, C, NEVER)
MEMBERS = {A: {"r"}, B: {"r", "r-1"}, C: {"r"}}
DOCUMENTED_ERRORS = {
    "malformed_event",
    "invalid_body",
    "invalid_json",
    "invalid_text",
    "invalid_room",
    "invalid_connection_id",
    "invalid_principal",
    "invalid_event",
    "invalid_data",
    "missing_room",
    "no_history",
    "not_a_member",
    "forbidden",
    "rate_limited",
    "not_connected",
    "payload_too_large",
    "unknown_action",
}
HANDLERS: dict[str, handlers.Handler] = {
    "connect": handlers.connect,
    "disconnect": handlers.disconnect,
    "send_message": handlers.send_message,
    "join_room": handlers.join_room,
    "leave_room": handlers.leave_room,
    "ping": handlers.ping,
    "presence": handlers.presence,
    "default": handlers.default,
    "websocket": handlers.websocket,
}
ROUTE_OF = {
    "connect": "$connect",
    "disconnect": "$disconnect",
    "send_message": "sendMessage",
    "join_room": "joinRoom",
    "leave_room": "leaveRoom",
    "ping": "ping",
    "presence": "presence",
    "default": "$default",
}
NAME_OF = {route: name for name, route in ROUTE_OF.items()}
HOSTILE_SETTINGS = settings(
    profile(),
    max_examples=scaled(0.3),  # fast 30, thorough 300 per handler and backend
    suppress_health_check=[
        *profile().suppress_health_check,
        HealthCheck.too_slow,
        # The fixtures hold a table and an API; every example resets the table itself.
        HealthCheck.function_scoped_fixture,
    ],
)

Item = dict[str, Any]
Answer = tuple[int, str | None]  # (status, error code)


class Env:
    """A runtime over a table, the local API, and the baseline every example starts from."""

    def __init__(self, harness: Harness, runtime: Runtime, clock: FakeClock) -> None:
        self.harness = harness
        self.runtime = runtime
        self.clock = clock

    @property
    def api(self) -> Any:
        return self.harness.api

    def __repr__(self) -> str:
        config = self.runtime.config
        return f"Env({config.strategy} on {self.harness.backend.name})"

    def reset(self) -> None:
        """Empty the table and bring back A, B and C."""
        self.harness.wipe()
        self.clock.now = START
        for cid, rooms in MEMBERS.items():
            self.api.connections.open(cid)
            assert handlers.connect(connect_event(cid, rooms=sorted(rooms)), None) == {
                "statusCode": 200
            }
        self.api.connections.close(C)
        self.clock.advance(5)  # so a ping's new expiry differs from the connect's

    def items(self) -> list[Item]:
        """Every item, every attribute, in a stable order."""
        items: list[Item] = []
        pages = self.harness.reader.get_paginator("scan").paginate(
            TableName=self.harness.config.table, ConsistentRead=True
        )
        for page in pages:
            items.extend(page["Items"])
        return sorted(items, key=lambda item: (item["pk"]["S"], item["sk"]["S"]))

    def keys(self) -> set[tuple[str, str]]:
        return {(i["connection_id"]["S"], i["sk"]["S"]) for i in self.items()}

    def frames(self, cid: str) -> list[dict[str, Any]]:
        return [frames.decode(raw) for raw in self.api.connections.inbox(cid)]


def make_env(make_harness: Callable[..., Harness], strategy: str) -> Iterator[Env]:
    harness = make_harness(strategy)
    clock = FakeClock(START)
    runtime = harness.start(clock)
    set_post_timeout(runtime)
    runtime.deliverer.sleep = no_sleep
    env = Env(harness, runtime, clock)
    yield env
    harness.stop()


@pytest.fixture
def env(make_harness: Callable[..., Harness]) -> Iterator[Env]:
    yield from make_env(make_harness, "gsi_query")


# -- reading an event the way the documentation describes it --------------------------


def connection_of(event: Any) -> str:
    cid = event["requestContext"]["connectionId"]
    assert isinstance(cid, str)
    return cid


def body_of(event: Any) -> dict[str, Any]:
    raw = event["body"]
    if event.get("isBase64Encoded") is True:
        raw = base64.b64decode(raw).decode()
    body = json.loads(raw)
    assert isinstance(body, dict)
    return body


def requested_rooms(event: Any) -> list[str]:
    """The ``?room=`` values of a $connect event (repeatable)."""
    multi, single = event.get("multiValueQueryStringParameters"), event.get("queryStringParameters")
    if isinstance(multi, dict) and isinstance(multi.get("room"), list):
        return list(multi["room"])
    if isinstance(single, dict) and "room" in single:
        return [single["room"]]
    return []


def assert_answer(response: Any) -> int:
    """The documented answer shape: 200 alone, or a 4xx with a JSON error. Its status."""
    assert isinstance(response, dict), response
    status = response.get("statusCode")
    assert isinstance(status, int), response
    if status == 200:
        assert response == {"statusCode": 200}
        return status
    assert 400 <= status < 500, f"client input answered {status}: {response}"
    assert response["headers"] == {"Content-Type": "application/json"}
    error = frames.check(json.loads(response["body"]), "errorAnswer")
    assert error["error"] in DOCUMENTED_ERRORS, error
    return status


def assert_room_isolation(env: Env) -> None:
    """Every frame for a room reached only that room's members."""
    for cid in (A, B):
        for frame in env.frames(cid):
            if frame["room"] is not None:
                assert frame["room"] in MEMBERS[cid], f"{cid} got a frame for {frame['room']}"


def owner(item: Item) -> str:
    cid = item["connection_id"]["S"]
    assert isinstance(cid, str)
    return cid


def audience_of(room: Any) -> set[str]:
    """Who a frame for ``room`` (None: everyone) is posted to, from the baseline table."""
    return {cid for cid, rooms in MEMBERS.items() if room is None or room in rooms}


def items_after_send(before_items: list[Item], audience: set[str]) -> list[Item]:
    """The table after a send: only the dropped C, posted to and answering 410, loses its
    rows; a frame not for C keeps them."""
    return [i for i in before_items if owner(i) != C] if C in audience else before_items


def assert_effect(env: Env, name: str, event: Any, before_items: list[Item]) -> str:
    """What an accepted request must have done. The accepted path it took."""
    cid = connection_of(event)
    before = {(owner(i), i["sk"]["S"]) for i in before_items}
    after_items, after = env.items(), env.keys()
    others_before = [i for i in before_items if owner(i) != cid]
    others_after = [i for i in after_items if owner(i) != cid]
    if name == "connect":
        rooms = requested_rooms(event)
        assert (cid, "CONN") in after
        assert {(cid, f"ROOM#{room}") for room in rooms} <= after
        authorizer = event["requestContext"].get("authorizer")
        principal = authorizer.get("principalId") if isinstance(authorizer, dict) else None
        assert ((cid, "USER") in after) == (isinstance(principal, str) and bool(principal))
        assert others_after == others_before, "a $connect touched another connection's rows"
        return "connect?room=" if rooms else "connect"
    if name == "disconnect":
        assert after_items == others_before, "a $disconnect left its rows or took others'"
        return name
    if name in ("join_room", "leave_room"):
        membership = (cid, f"ROOM#{body_of(event)['room']}")
        assert (membership in after) == (name == "join_room")
        assert after ^ before <= {membership}
        return name
    if name == "presence":
        room = body_of(event)["room"]
        assert cid in audience_of(room), f"{cid}, no member of {room}, was told its presence"
        if cid == C:  # dropped: the answer met a 410, which deleted its rows
            assert after_items == items_after_send(before_items, {C})
            return name
        (frame,) = env.frames(cid)
        members = {m["connection_id"] for m in frame["members"]}
        assert members == audience_of(room), frame
        assert (frame["event"], frame["count"]) == ("presence", len(members))
        assert after_items == before_items
        return name
    if name == "ping":
        (row,) = [i for i in after_items if (owner(i), i["sk"]["S"]) == (cid, "CONN")]
        assert int(row["expires_at"]["N"]) == int(env.clock.now) + TTL
        assert after == before
        return name
    if name == "send_message":
        room = body_of(event).get("room")
        audience = audience_of(room)
        for member in sorted(audience - {C}):
            (frame,) = env.frames(member)
            sent = body_of(event)
            assert frame["event"] == sent.get("event", "message")
            assert frame.get("data") == sent.get("data")
        for outsider in sorted({A, B} - audience):
            assert env.frames(outsider) == [], f"{outsider} got a frame for {room}"
        assert after_items == items_after_send(before_items, audience)
        return "send_message to everyone" if room is None else "send_message to a room"
    raise AssertionError(f"{name} accepted {event!r}")


def routed(event: Any) -> tuple[str, bool]:
    """The handler ``handlers.websocket`` dispatches to, and whether by the body's action."""
    context = event.get("requestContext") if isinstance(event, dict) else None
    route = context.get("routeKey") if isinstance(context, dict) else None
    if route == "$default" and isinstance(event, dict) and isinstance(event.get("body"), str):
        try:
            action = json.loads(event["body"]).get("action")
        except (ValueError, AttributeError, RecursionError):
            action = None
        if action in handlers.CLIENT_ACTIONS:
            return NAME_OF[action], True
    return NAME_OF.get(route if isinstance(route, str) else "", "default"), False


# -- events a handler accepts ----------------------------------------------------------


def _body(action: str, **fields: Any) -> dict[str, Any]:
    return {"action": action, **fields}


# One event per accepted path of each handler, run as explicit examples: the generated
# events are mutated so heavily that they are almost never accepted.
ACCEPTED_EXAMPLES: dict[str, list[dict[str, Any]]] = {
    "connect": [
        connect_event(NEVER),
        connect_event(NEVER, rooms=["r", "r.1:x_y"], principal="auth0|x.y@z"),
    ],
    "disconnect": [disconnect_event(B)],
    "join_room": [message_event(A, _body("joinRoom", room="r-1"))],
    "leave_room": [message_event(B, _body("leaveRoom", room="r-1"))],
    "ping": [message_event(A, _body("ping"))],
    "presence": [message_event(B, _body("presence", room="r-1"))],
    "send_message": [
        message_event(A, _body("sendMessage", text="to all")),
        message_event(B, _body("sendMessage", text="to r-1", room="r-1")),
        message_event(A, _body("sendMessage", data={"n": [1, None]}, event="note.v1")),
    ],
    "default": [],
}
ACCEPTED_EXAMPLES["websocket"] = [
    *(event for events in ACCEPTED_EXAMPLES.values() for event in events),
    message_event(A, _body("joinRoom", room="r-1"), route="$default"),
]
BY_ACTION = "by the body's action on $default"
ACCEPTED_PATHS: dict[str, set[str]] = {
    "connect": {"connect", "connect?room="},
    "disconnect": {"disconnect"},
    "join_room": {"join_room"},
    "leave_room": {"leave_room"},
    "ping": {"ping"},
    "presence": {"presence"},
    "send_message": {"send_message to everyone", "send_message to a room"},
    "default": set(),
}
ACCEPTED_PATHS["websocket"] = {BY_ACTION}.union(*ACCEPTED_PATHS.values())


@st.composite
def valid_events(draw: st.DrawFn, route: str) -> dict[str, Any]:
    """A well-formed event for ``route`` from any known id, with valid rooms: often accepted."""
    cid = draw(st.sampled_from(KNOWN))
    rooms = st.sampled_from(ROOMS)
    if route == "$connect":
        return connect_event(cid, rooms=draw(st.lists(rooms, max_size=2)))
    if route == "$disconnect":
        return disconnect_event(cid)
    action = (
        route
        if route in handlers.CLIENT_ACTIONS
        else draw(st.sampled_from(handlers.CLIENT_ACTIONS))
    )
    body = _body(action, text=draw(message_texts()), room=draw(st.none() | rooms))
    if draw(st.booleans()):
        del body["room"]
    event = message_event(cid, body, route=route)
    if draw(st.integers(0, 3)) == 0:
        event["body"] = base64.b64encode(event["body"].encode()).decode()
        event["isBase64Encoded"] = True
    return event


def events_for(name: str) -> st.SearchStrategy[Any]:
    """Events for handler ``name``: a third well-formed, the rest hostile."""

    def for_route(route: str) -> st.SearchStrategy[Any]:
        hostile = websocket_events(route, KNOWN)
        return st.one_of(valid_events(route), hostile, hostile)

    route = ROUTE_OF.get(name)
    return for_route(route) if route else st.sampled_from(ROUTES).flatmap(for_route)


# -- the properties --------------------------------------------------------------------

WEBSOCKET_HANDLERS = sorted(HANDLERS)


@pytest.mark.parametrize("backend", PROPERTY_BACKENDS, indirect=True)
@pytest.mark.parametrize("name", WEBSOCKET_HANDLERS)
def test_hostile_events_are_answered_4xx_or_as_documented(env: Env, name: str) -> None:
    """Every event: a 4xx that changes nothing, or 200 with its effect; every path is taken."""
    seen: set[str] = set()

    def check(event: Any) -> None:
        env.reset()
        before_items = env.items()
        posts = env.api.total("POST")

        status = assert_answer(HANDLERS[name](event, None))

        assert_room_isolation(env)
        if status != 200:
            assert env.items() == before_items, "a refused request changed the table"
            assert env.api.total("POST") == posts, "a refused request posted"
            return
        target, by_action = routed(event) if name == "websocket" else (name, False)
        seen.add(assert_effect(env, target, event, before_items))
        if by_action:
            seen.add(BY_ACTION)

    for accepted in reversed(ACCEPTED_EXAMPLES[name]):
        check = example(event=accepted)(check)
    HOSTILE_SETTINGS(given(event=events_for(name))(check))()
    # So the documented-effect checks cannot silently go dead again.
    assert ACCEPTED_PATHS[name] <= seen, f"never accepted: {ACCEPTED_PATHS[name] - seen}"


def _b64_non_ascii() -> dict[str, Any]:
    event = message_event(A, None, route="sendMessage")
    event["body"], event["isBase64Encoded"] = "é", True
    return event


def _lone_surrogate_text() -> dict[str, Any]:
    return message_event(A, '{"action": "sendMessage", "text": "\\ud800"}', route="sendMessage")


@pytest.mark.parametrize("backend", PROPERTY_BACKENDS, indirect=True)
@pytest.mark.parametrize(
    ("event", "expected"),
    [
        pytest.param(_b64_non_ascii(), (400, "invalid_body"), id="base64_non_ascii"),
        # Refused before any read, as `expected_send` says: valid JSON, but no Unicode text.
        pytest.param(_lone_surrogate_text(), (400, "invalid_text"), id="lone_surrogate_text"),
    ],
)
def test_found_by_the_hostile_properties(env: Env, event: dict[str, Any], expected: Answer) -> None:
    """Counterexamples the properties found, kept as plain regression tests."""
    env.reset()
    before, posts = env.items(), env.api.total("POST")
    response = handlers.send_message(event, None)
    assert assert_answer(response) == expected[0]
    assert json.loads(response["body"])["error"] == expected[1]
    assert env.items() == before
    assert env.api.total("POST") == posts


def has_surrogates(text: str) -> bool:
    return any(0xD800 <= ord(char) <= 0xDFFF for char in text)


def as_received(text: str) -> str:
    """``text`` as the handler reads it from the JSON body: the escapes of a surrogate pair
    (\\ud800\\udc00) decode to one character, U+10000; lone ones stay lone."""
    decoded: str = json.loads(json.dumps(text))
    return decoded


def expected_send(text: Any, room: Any, body_size: int) -> set[Answer]:
    """The documented answers to A (a member of ``r``) sending ``text`` to ``room``."""
    if body_size > MAX_BODY_BYTES:
        return {(413, "payload_too_large")}
    if any(isinstance(v, float) and not math.isfinite(v) for v in (text, room)):
        return {(400, "invalid_json")}  # json.dumps wrote Infinity: no JSON number
    if not isinstance(text, str):
        return {(400, "invalid_text")}
    text = as_received(text)
    if has_surrogates(text):
        # Valid JSON ("\ud800"), but no Unicode text: refused before anything is read.
        return {(400, "invalid_text")}
    if room is not None:
        try:
            keys.validate_room(room)
        except ValueError:
            return {(400, "invalid_room")}
        if room not in MEMBERS[A]:
            return {(403, "not_a_member")}
    frame = json.dumps(
        {"id": "0" * 32, "event": "message", "room": room, "from": A, "body": text},
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()
    if len(frame) > MAX_PAYLOAD_BYTES:
        return {(413, "payload_too_large")}
    return {(200, None)}


@pytest.fixture(params=STRATEGIES)
def strategy_env(
    request: pytest.FixtureRequest, make_harness: Callable[..., Harness]
) -> Iterator[Env]:
    yield from make_env(make_harness, request.param)


@pytest.mark.parametrize("backend", PROPERTY_BACKENDS, indirect=True)
@HOSTILE_SETTINGS
@given(
    text=texts(),
    room=st.one_of(st.none(), st.sampled_from(["r", "r-1", "r.1:x_y"]), room_values()),
)
@example(text="\ud800", room=None)
@example(text=math.inf, room=None)  # json.dumps writes Infinity, which is no JSON
@example(text="\ud800\udc00", room=None)  # a pair: one character once decoded
@example(text="x" * (MAX_PAYLOAD_BYTES - 60), room="r")
def test_hostile_sends_on_every_strategy(strategy_env: Env, text: Any, room: Any) -> None:
    """On each strategy: the documented answer, and a frame only to the live audience."""
    env = strategy_env
    env.reset()
    before, posts = env.items(), env.api.total("POST")
    body = json.dumps({"action": "sendMessage", "text": text, "room": room})
    event = message_event(A, body, route="sendMessage")
    pump = None
    if env.runtime.config.queue_url is not None:
        pump = SqsEventSource(env.harness.sqs, env.runtime.config.queue_url, handlers.sqs_worker)

    response = handlers.send_message(event, None)
    if pump is not None:
        pump.drain(max_polls=50)

    status = assert_answer(response)
    code = json.loads(response["body"])["error"] if status != 200 else None
    assert (status, code) in expected_send(text, room, len(body))
    assert_room_isolation(env)
    if status != 200:
        assert env.items() == before
        assert env.api.total("POST") == posts
        return
    audience = audience_of(room)
    for member in sorted(audience - {C}):
        (frame,) = env.frames(member)
        assert frame["body"] == as_received(text)
    assert {k for k in (A, B) if env.frames(k)} <= audience
    assert env.items() == items_after_send(before, audience)


@pytest.mark.parametrize("backend", PROPERTY_BACKENDS, indirect=True)
@HOSTILE_SETTINGS
@given(event=sqs_events(KNOWN, Message(A, "from the queue", "r").frame()))
@example(event={"Records": 1})  # not a list: the unreadable-event path must not raise either
def test_sqs_worker_never_raises_and_reports_unreadable_records(env: Env, event: Any) -> None:
    env.reset()
    before = env.keys()

    response = handlers.sqs_worker(event, None)

    assert isinstance(response, dict)
    assert set(response) == {"batchItemFailures"}
    reported = [item["itemIdentifier"] for item in response["batchItemFailures"]]
    assert all(isinstance(i, str) for i in reported)
    records = event.get("Records") if isinstance(event, dict) else None
    records = records if isinstance(records, list) else []
    ids = [r.get("messageId") for r in records if isinstance(r, dict)]
    assert set(reported) <= {i for i in ids if isinstance(i, str)}
    targeted: set[str] = set()
    for record in records:
        if not isinstance(record, dict) or not isinstance(record.get("messageId"), str):
            continue
        batch = readable_batch(record)
        if batch is None:
            assert record["messageId"] in reported, f"unreadable record not reported: {record}"
        else:
            # Every target is valid and A, B and C's API answer at once: nothing to retry.
            assert record["messageId"] not in reported, f"readable record reported: {record}"
            targeted.update(batch)
            for cid in sorted(set(batch) & {A, B}):
                assert env.frames(cid), f"{cid} missed a readable record's frame"
    for cid in (A, B):
        assert cid in targeted or env.frames(cid) == [], f"{cid} got a frame it was not sent"
    # Only the dropped C, answering 410, can lose rows; never A or B.
    expected = {k for k in before if k[0] != C} if C in targeted else before
    assert env.keys() == expected


def readable_batch(record: dict[str, Any]) -> list[str] | None:
    """The ids of a record whose body is a fanout batch, or None."""
    try:
        data = json.loads(record["body"])
    except (KeyError, TypeError, ValueError, binascii.Error):
        return None
    if not isinstance(data, dict) or data.get("v") != 1:
        return None
    ids = data.get("ids")
    if not isinstance(data.get("frame"), str) or not isinstance(data.get("endpoint"), str):
        return None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        return None
    return ids


@pytest.mark.parametrize("backend", PROPERTY_BACKENDS, indirect=True)
@HOSTILE_SETTINGS
@given(event=st.one_of(websocket_events("$default", KNOWN), st.none(), st.text(max_size=5)))
def test_sweep_ignores_its_event_and_deletes_only_expired_rows(env: Env, event: Any) -> None:
    env.reset()
    before = env.items()
    assert handlers.sweep(event, None) == {"connections": 0, "memberships": 0}
    assert env.items() == before
    env.clock.advance(TTL)  # every row expires: the sweep takes them all, whatever the event
    assert handlers.sweep(event, None) == {"connections": 3, "memberships": 4}
    assert env.items() == []
