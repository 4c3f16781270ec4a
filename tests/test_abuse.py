"""Attacks on the handlers, each kept as a test: numbers and nesting no parser should take,
a policy that raises what ``except Exception`` lets through, an authorizer context that names
a principal, principals with ``|`` and ``+`` in their own rooms."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fanout_core import handlers
from fanout_core.events import MAX_BODY_BYTES, MAX_JSON_DEPTH
from fanout_core.local.authorizer import verdict
from fanout_core.local.management_api import LocalManagementApi
from fanout_core.policy import AccessRequest, Decision, owner_rooms
from tests.support.authorizers import policy as allow
from tests.support.backends import Backend
from tests.support.clock import FakeClock
from tests.support.events import connect_event, message_event
from tests.support.harness import Chat, make_chat
from tests.support.hyp_strategies import profile, scaled
from tests.support.machine import error_of

OK = {"statusCode": 200}


@pytest.fixture
def chat_with(
    backend: Backend, local_api: LocalManagementApi, clock: FakeClock
) -> Callable[..., Chat]:
    def make(**settings: Any) -> Chat:
        return make_chat(backend, local_api, clock, "gsi_query", **settings)

    return make


# -- numbers and nesting no parser should take (hole 6) ---------------------------------

# The fields each action reads, and one it does not: a hostile value goes in each.
FIELDS = {
    "sendMessage": ("text", "data", "room", "event", "id", "x"),
    "joinRoom": ("room", "x"),
    "leaveRoom": ("room", "x"),
    "ping": ("x",),
    "presence": ("room", "x"),
    "history": ("room", "since", "last", "epoch", "x"),
}


# JSON text no handler should take, as (kind, size): integers past Python's 4,300-digit
# limit, floats that overflow to infinity, NaN and the infinities (not JSON, yet Python reads
# them), arrays and objects nested past what a body may hold. Built in the test: a value of
# 100 KB would make Hypothesis's report of an example unreadable.
HOSTILE_VALUES = [
    *(("digits", n) for n in (4_301, 10_000, 60_000)),
    *(("-digits", n) for n in (4_301, 60_000)),
    *(("float", i) for i in range(4)),
    *(("constant", i) for i in range(3)),
    *(("arrays", d) for d in (MAX_JSON_DEPTH, 1_000, 50_000)),
    *(("objects", d) for d in (MAX_JSON_DEPTH, 1_000, 20_000)),
]
FLOATS = ("1e999", "-1e400", "1" + "0" * 400 + ".5", "2e308")
CONSTANTS = ("NaN", "Infinity", "-Infinity")


def hostile_value(kind: str, n: int) -> str:
    if kind.endswith("digits"):
        return kind[: -len("digits")] + "1" * n
    if kind == "float":
        return FLOATS[n]
    if kind == "constant":
        return CONSTANTS[n]
    if kind == "arrays":
        return "[" * n + "]" * n
    return '{"a":' * n + "1" + "}" * n


def hostile_body(action: str, field: str, value: tuple[str, int], wrapped: bool) -> str:
    """One field of one action holding a hostile value, bare or inside an array."""
    text = hostile_value(*value)
    if wrapped:
        text = f'[1, {{"k": {text}}}]'
    return f'{{"action": {json.dumps(action)}, {json.dumps(field)}: {text}}}'


ACTION_FIELDS = [(action, field) for action, fields in FIELDS.items() for field in fields]


@pytest.mark.parametrize("backend", ["moto"], indirect=True)
def test_huge_numbers_and_deep_nesting_in_any_field_are_400_and_log_no_error(
    chat_with: Callable[..., Chat], caplog: pytest.LogCaptureFixture
) -> None:
    """Before, an integer of 4,301 digits answered 500 and logged a traceback at ERROR: any
    client could flood the error logs. Now every such body is 400 ``invalid_json``."""
    chat = chat_with(history_seconds=60)
    a = chat.connect(rooms=["r"])
    before = chat.table()

    @settings(
        profile(),
        max_examples=scaled(0.5),
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        where=st.sampled_from(ACTION_FIELDS),
        value=st.sampled_from(HOSTILE_VALUES),
        wrapped=st.booleans(),
        router=st.booleans(),
    )
    def check(where: tuple[str, str], value: tuple[str, int], wrapped: bool, router: bool) -> None:
        action = where[0]
        body = hostile_body(*where, value, wrapped)
        assert len(body) < MAX_BODY_BYTES
        caplog.clear()
        with caplog.at_level(logging.INFO):
            if router:  # API Gateway's own route selection could not read it: $default
                response = handlers.websocket(message_event(a, body, route="$default"))
            else:
                response = handlers.ROUTES[action](message_event(a, body, route=action), None)
        assert error_of(response) == (400, "invalid_json"), (body[:80], response)
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert not errors, errors[0].getMessage()
        assert chat.table() == before
        assert chat.api.total("POST") == 0

    check()


@pytest.mark.parametrize("backend", ["moto"], indirect=True)
@pytest.mark.parametrize(
    ("value", "answer"),
    [
        ("1" * 4300, OK),  # the longest integer Python reads: data as sent
        # As deep as a body may be, counting the body itself, and one level more.
        ("[" * (MAX_JSON_DEPTH - 1) + "]" * (MAX_JSON_DEPTH - 1), OK),
        ("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH, (400, "invalid_json")),
        ("1" * 4301, (400, "invalid_json")),
    ],
)
def test_the_limits_of_numbers_and_nesting(
    chat_with: Callable[..., Chat], value: str, answer: Any
) -> None:
    chat = chat_with()
    a = chat.connect(rooms=["r"])
    body = f'{{"action": "sendMessage", "room": "r", "data": {value}}}'
    response = chat.call(a, body)
    if answer == OK:
        assert response == OK
        assert len(chat.frames(a)) == 1
    else:
        assert error_of(response) == answer


# -- a policy that raises what `except Exception` lets through (hole 10) ----------------


def exits(request: AccessRequest) -> Decision:
    raise SystemExit(1)


def interrupts(request: AccessRequest) -> Decision:
    raise KeyboardInterrupt


@pytest.mark.parametrize("backend", ["moto"], indirect=True)
@pytest.mark.parametrize("policy", [exits, interrupts])
def test_a_policy_that_raises_any_exception_fails_closed(
    chat_with: Callable[..., Chat], policy: Callable[[AccessRequest], Decision]
) -> None:
    chat = chat_with(policy=policy)
    cid = chat.api.connections.open()
    try:
        response = handlers.connect(connect_event(cid, rooms=["r"]), None)
    except BaseException as escaped:  # a KeyboardInterrupt here would stop the whole run
        pytest.fail(f"the policy's {escaped!r} escaped the handler")
    assert error_of(response) == (500, "policy_failed")
    assert chat.table() == []


# -- identity: the authorizer's principal wins (hole 9) ---------------------------------


def test_a_context_key_named_principal_id_never_replaces_the_principal() -> None:
    """The local bridge builds ``requestContext.authorizer`` from the authorizer's answer:
    before, ``{"principalId": principal, **context}`` let the context's key win."""
    arn = "arn:aws:execute-api:us-east-1:0:api/local/$connect"

    def forging(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return allow("alice", "Allow", arn, principalId="admin", rooms="user:admin")

    decided = verdict(forging, {"methodArn": arn}, None)
    assert decided.status == 200
    assert decided.identity["principalId"] == "alice"
    assert decided.identity["rooms"] == "user:admin"


@pytest.mark.parametrize("backend", ["moto"], indirect=True)
def test_the_handlers_read_the_principal_only_from_principal_id(
    chat_with: Callable[..., Chat],
) -> None:
    """Context keys never stand in for the principal, whatever their name."""
    chat = chat_with(policy=owner_rooms)
    a = chat.connect(principal="alice", claims={"principal": "admin", "sub": "admin"})
    assert chat.call(a, {"action": "joinRoom", "room": "user:alice"}) == OK
    assert error_of(chat.call(a, {"action": "joinRoom", "room": "user:admin"})) == (
        403,
        "forbidden",
    )
    nobody = chat.api.connections.open()
    event = connect_event(nobody, claims={"principal": "admin", "rooms": "lobby"})
    assert handlers.connect(event, None) == OK
    rows = {(r.connection_id, r.sk) for r in chat.runtime.store.rows()}
    assert (nobody, "USER") not in rows  # no principal: listed under no user


# -- principals with `|` and `+` (hole 8) -------------------------------------------------


@pytest.mark.parametrize("backend", ["moto"], indirect=True)
@pytest.mark.parametrize("principal", ["auth0|5f7c8ec7c33c6c004bbafe82", "a.b+c@example.com"])
def test_every_principal_uses_its_own_user_room_under_owner_rooms(
    chat_with: Callable[..., Chat], principal: str
) -> None:
    chat = chat_with(policy=owner_rooms)
    room = f"user:{principal}"
    a = chat.connect(rooms=[room], principal=principal)
    b = chat.connect(principal=principal)
    assert chat.call(b, {"action": "joinRoom", "room": room}) == OK
    assert chat.send(a, "to me", room=room) == OK
    assert chat.texts(a) == chat.texts(b) == ["to me"]
