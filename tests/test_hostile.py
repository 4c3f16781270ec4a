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
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fanout_core import handlers, keys
from fanout_core.events import MAX_BODY_BYTES
from fanout_core.local.sqs_pump import SqsEventSource
from fanout_core.message import MAX_PAYLOAD_BYTES, Message
from fanout_core.runtime import Runtime, build_runtime, set_runtime
from tests.clock import FakeClock
from tests.conftest import STRATEGIES
from tests.events import connect_event, message_event
from tests.hyp_strategies import (
    ROUTES,
    profile,
    room_values,
    scaled,
    sqs_events,
    texts,
    websocket_events,
)
from tests.test_properties import (
    PROPERTY_BACKENDS,
    START,
    TTL,
    Harness,
    no_sleep,
    set_post_timeout,
)
from tests.test_properties import make_harness as make_harness  # the fixture, shared

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
    "missing_room",
    "not_a_member",
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
    "default": "$default",
}
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
        return [json.loads(raw) for raw in self.api.connections.inbox(cid)]


def make_env(make_harness: Callable[..., Harness], strategy: str) -> Iterator[Env]:
    harness = make_harness(strategy)
    clock = FakeClock(START)
    config = harness.config
    queue_url = None
    if strategy == "sqs_batched":
        queue_url = harness.sqs.create_queue(
            QueueName=f"hostile-{config.table}", Attributes={"VisibilityTimeout": "0"}
        )["QueueUrl"]
        config = type(config)(**{**config.__dict__, "queue_url": queue_url})
    runtime = build_runtime(config, clock=clock)
    set_post_timeout(runtime)
    runtime.deliverer.sleep = no_sleep
    set_runtime(runtime)
    env = Env(harness, runtime, clock)
    yield env
    set_runtime(None)
    runtime.close()
    if queue_url is not None:
        harness.sqs.delete_queue(QueueUrl=queue_url)


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
    error = json.loads(response["body"])
    assert isinstance(error, dict)
    assert error["error"] in DOCUMENTED_ERRORS, error
    assert isinstance(error["message"], str)
    return status


def assert_room_isolation(env: Env) -> None:
    """Every frame for a room reached only that room's members."""
    for cid in (A, B):
        for frame in env.frames(cid):
            if frame["room"] is not None:
                assert frame["room"] in MEMBERS[cid], f"{cid} got a frame for {frame['room']}"


def assert_effect(env: Env, name: str, event: Any, before: set[tuple[str, str]]) -> None:
    """What an accepted request must have done."""
    cid = connection_of(event)
    after = env.keys()
    if name == "connect":
        rooms = requested_rooms(event)
        assert (cid, "CONN") in after
        assert {(cid, f"ROOM#{room}") for room in rooms} <= after
    elif name == "disconnect":
        assert not any(owner == cid for owner, _ in after)
    elif name in ("join_room", "leave_room"):
        membership = (cid, f"ROOM#{body_of(event)['room']}")
        assert (membership in after) == (name == "join_room")
        assert after ^ before <= {membership}
    elif name == "ping":
        (row,) = [
            i for i in env.items() if (i["connection_id"]["S"], i["sk"]["S"]) == (cid, "CONN")
        ]
        assert int(row["expires_at"]["N"]) == int(env.clock.now) + TTL
        assert after == before
    elif name == "send_message":
        room = body_of(event).get("room")
        audience = {c for c, rooms in MEMBERS.items() if room is None or room in rooms}
        for member in sorted(audience - {C}):
            assert len(env.frames(member)) == 1, f"{member} missed the frame"
        # Only the dropped member's 410 deletes, and it deletes all of C.
        assert after == {k for k in before if k[0] != C}
    else:
        raise AssertionError(f"{name} accepted {event!r}")


# -- the properties --------------------------------------------------------------------

WEBSOCKET_HANDLERS = sorted(HANDLERS)


@pytest.mark.parametrize("backend", PROPERTY_BACKENDS, indirect=True)
@pytest.mark.parametrize("name", WEBSOCKET_HANDLERS)
@HOSTILE_SETTINGS
@given(data=st.data())
def test_hostile_events_are_answered_4xx_or_as_documented(
    env: Env, name: str, data: st.DataObject
) -> None:
    route = ROUTE_OF.get(name) or data.draw(st.sampled_from(ROUTES), label="route")
    event = data.draw(websocket_events(route, KNOWN), label="event")
    env.reset()
    before_items, before = env.items(), env.keys()
    posts = env.api.total("POST")

    status = assert_answer(HANDLERS[name](event, None))

    assert_room_isolation(env)
    if status != 200:
        assert env.items() == before_items, "a refused request changed the table"
        assert env.api.total("POST") == posts, "a refused request posted"
    elif name != "websocket":  # the router's effect is its route's, checked above
        assert_effect(env, name, event, before)


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
        pytest.param(_b64_non_ascii(), {(400, "invalid_body")}, id="base64_non_ascii"),
        pytest.param(
            _lone_surrogate_text(),
            {(200, None), (400, "invalid_text")},
            id="lone_surrogate_text",
        ),
    ],
)
def test_found_by_the_hostile_properties(
    env: Env, event: dict[str, Any], expected: set[Answer]
) -> None:
    """Counterexamples the properties found, kept as plain regression tests."""
    env.reset()
    before = env.items()
    response = handlers.send_message(event, None)
    status = assert_answer(response)
    code = json.loads(response["body"])["error"] if status != 200 else None
    assert (status, code) in expected
    if status != 200:
        assert env.items() == before


def has_surrogates(text: str) -> bool:
    return any(0xD800 <= ord(char) <= 0xDFFF for char in text)


def expected_send(text: Any, room: Any, body_size: int) -> set[Answer]:
    """The documented answers to A (a member of ``r``) sending ``text`` to ``room``."""
    if body_size > MAX_BODY_BYTES:
        return {(413, "payload_too_large")}
    if not isinstance(text, str):
        return {(400, "invalid_text")}
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
        {"id": "0" * 32, "from": A, "room": room, "body": text},
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
    for member in sorted(c for c in (A, B) if room is None or room in MEMBERS[c]):
        (frame,) = env.frames(member)
        assert frame["body"] == text or has_surrogates(text)
    assert {k for k in (A, B) if env.frames(k)} <= {
        c for c in (A, B) if room is None or room in MEMBERS[c]
    }


@pytest.mark.parametrize("backend", PROPERTY_BACKENDS, indirect=True)
@HOSTILE_SETTINGS
@given(event=sqs_events(KNOWN, Message(A, "from the queue", "r").frame()))
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
