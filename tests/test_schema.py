"""The protocol's JSON Schema: a valid schema that accepts what the handlers accept.

Every other test checks frames and error answers against it (tests/support/frames.py); these
check the schema itself, so that those checks can fail, and hold it to the handlers, which are
the compatibility contract.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from fanout_core.errors import FanoutError
from fanout_core.events import RequestError, history_of, idempotency_key_of, message_of
from fanout_core.message import Message
from tests.support import frames
from tests.support.hyp_strategies import JUNK, ROOMS, hostile_strings, message_texts

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SENDER = "L0SM9cOFvHcCIhw="
SCHEMA: dict[str, Any] = json.loads(frames.SCHEMA.read_text())


def valid(value: Any, definition: str) -> bool:
    try:
        frames.check(value, definition)
    except jsonschema.ValidationError:
        return False
    return True


def test_the_schema_is_valid_by_the_draft_it_declares() -> None:
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    validator = jsonschema.validators.validator_for(SCHEMA)
    assert validator is jsonschema.Draft202012Validator
    validator.check_schema(SCHEMA)
    broken = {**SCHEMA, "$defs": {**SCHEMA["$defs"], "room": {"type": "text"}}}
    with pytest.raises(jsonschema.SchemaError):
        validator.check_schema(broken)


def test_the_root_takes_a_request_or_a_frame() -> None:
    root = jsonschema.Draft202012Validator(SCHEMA)
    assert root.is_valid({"action": "ping"})
    assert root.is_valid({"error": "not_connected", "message": "gone"})
    assert not root.is_valid({"action": "shout"})
    assert not root.is_valid({"id": "1", "event": "message", "room": None, "from": None})


MESSAGE = {"id": "9f1c", "event": "message", "room": "lobby", "from": SENDER}

JOINED = {"id": "j1", "event": "fanout.joined", "room": "lobby", "from": None, "seq": 41}
JOINED["epoch"] = 1796247568337

GOOD: list[tuple[str, Any]] = [
    ("messageFrame", {**MESSAGE, "body": "hello"}),
    ("messageFrame", {**MESSAGE, "room": None, "from": None, "data": {"order": 42}}),
    ("messageFrame", {**MESSAGE, "data": None}),
    ("messageFrame", {**MESSAGE, "event": "presence.join", "data": [1], "extra": "ignored"}),
    (
        "presenceFrame",
        {
            "id": "p1",
            "event": "presence",
            "room": "lobby",
            "from": None,
            "members": [{"connection_id": SENDER, "principal": None}],
            "count": 1,
            "part": 1,
            "parts": 1,
        },
    ),
    ("errorAnswer", {"error": "rate_limited", "message": "slow down", "retry_after": 0.5}),
    ("sendMessage", {"action": "sendMessage", "text": "hi"}),
    ("sendMessage", {"action": "sendMessage", "text": "", "room": None}),
    ("sendMessage", {"action": "sendMessage", "data": None, "room": "r.1:x_y"}),
    ("sendMessage", {"action": "sendMessage", "data": 1, "text": 5}),  # text ignored
    ("sendMessage", {"action": "sendMessage", "text": "hi", "event": "order.updated"}),
    ("joinRoom", {"action": "joinRoom", "room": "lobby"}),
    ("leaveRoom", {"action": "leaveRoom", "room": "lobby"}),
    ("ping", {"action": "ping"}),
    ("presence", {"action": "presence", "room": "lobby"}),
    # null is what the handlers read as absent.
    ("sendMessage", {"action": "sendMessage", "text": "hi", "id": None}),
    ("history", {"action": "history", "room": "lobby", "since": 3}),
    ("history", {"action": "history", "room": None, "last": 10}),
    ("history", {"action": "history", "room": "lobby", "since": 3, "last": None}),
    ("history", {"action": "history", "room": "lobby", "since": None, "last": 2}),
    ("history", {"action": "history", "room": "lobby", "since": 3, "epoch": None}),
    ("history", {"action": "history", "room": "lobby", "since": 3, "epoch": 1796247568337}),
    ("joinedFrame", {**JOINED}),
    ("frame", {**JOINED, "seq": 0}),  # a room nothing was published to yet
]

BAD: list[tuple[str, Any, str]] = [
    ("joinedFrame", {**JOINED, "seq": None}, "no seq"),
    ("joinedFrame", {**JOINED, "epoch": 0}, "no numbering"),
    ("joinedFrame", {**JOINED, "room": None}, "no room"),
    ("joinedFrame", {**JOINED, "event": "joined"}, "another event"),
    ("messageFrame", {k: v for k, v in MESSAGE.items() if k != "id"} | {"body": "x"}, "no id"),
    ("messageFrame", {**MESSAGE, "id": "", "body": "x"}, "empty id"),
    ("messageFrame", {**MESSAGE, "body": "x", "data": 1}, "body and data"),
    ("messageFrame", dict(MESSAGE), "neither body nor data"),
    ("messageFrame", {**MESSAGE, "body": 5}, "body not a string"),
    ("messageFrame", {**MESSAGE, "room": "a#b", "body": "x"}, "bad room"),
    ("messageFrame", {**MESSAGE, "from": "a b", "body": "x"}, "bad sender"),
    ("errorAnswer", {"error": "Throttled", "message": "x"}, "code not snake case"),
    ("errorAnswer", {"error": "throttled"}, "no message"),
    ("errorAnswer", {"error": "throttled", "message": "x", "detail": 1}, "extra field"),
    ("errorAnswer", {"error": "rate_limited", "message": "x", "retry_after": -1}, "negative"),
    ("sendMessage", {"action": "sendMessage", "text": 5}, "text not a string"),
    ("sendMessage", {"action": "sendMessage", "text": None}, "text null"),
    ("sendMessage", {"action": "sendMessage"}, "neither text nor data"),
    ("sendMessage", {"action": "sendMessage", "text": "x", "room": "a#b"}, "bad room"),
    ("sendMessage", {"action": "sendMessage", "text": "x", "room": ""}, "empty room"),
    ("sendMessage", {"action": "sendMessage", "text": "x", "event": "presence.join"}, "event"),
    ("sendMessage", {"action": "sendMessage", "text": "x", "event": 7}, "event not a string"),
    ("joinRoom", {"action": "joinRoom"}, "no room"),
    ("joinRoom", {"action": "joinRoom", "room": "x" * 201}, "room too long"),
    ("presence", {"action": "presence", "room": None}, "room null"),
    ("sendMessage", {"action": "sendMessage", "text": "x", "id": "a b"}, "bad id"),
    ("history", {"action": "history", "room": "r"}, "neither since nor last"),
    ("history", {"action": "history", "room": "r", "since": None}, "since null alone"),
    ("history", {"action": "history", "since": None, "last": None}, "both null"),
    ("history", {"action": "history", "since": 1, "last": 1}, "since and last"),
    ("history", {"action": "history", "since": -1}, "negative since"),
    ("history", {"action": "history", "since": True}, "since a boolean"),
    ("history", {"action": "history", "since": 1, "epoch": "1"}, "epoch a string"),
    ("request", {"action": "shout"}, "unknown action"),
    ("request", {"room": "lobby"}, "no action"),
]


@pytest.mark.parametrize(("definition", "value"), GOOD)
def test_the_schema_accepts_good_frames_and_requests(definition: str, value: Any) -> None:
    frames.check(value, definition)
    umbrella = "request" if "action" in value else "frame"
    frames.check(value, umbrella)


@pytest.mark.parametrize(("definition", "value", "why"), BAD, ids=[b[2] for b in BAD])
def test_the_schema_rejects_bad_frames_and_requests(definition: str, value: Any, why: str) -> None:
    with pytest.raises(jsonschema.ValidationError):
        frames.check(value, definition)


def test_decode_refuses_an_invalid_frame() -> None:
    raw = json.dumps({**MESSAGE, "body": "x", "data": 1})
    with pytest.raises(jsonschema.ValidationError):
        frames.decode(raw)
    assert frames.decode(json.dumps({**MESSAGE, "body": "x"}))["body"] == "x"


def documented_requests() -> list[tuple[str, str]]:
    """Every client request in the docs: a JSON object starting ``{"action"``, with its page."""
    found = []
    for page in DOCS:
        for line in page.read_text().splitlines():
            for match in re.finditer(r'\{"action"', line):
                found.append((page.name, line[match.start() :]))
    return found


REQUESTS = documented_requests()


def test_the_docs_show_every_action() -> None:
    decoder = json.JSONDecoder()
    actions = {decoder.raw_decode(text)[0]["action"] for _, text in REQUESTS}
    assert actions == {"sendMessage", "joinRoom", "leaveRoom", "ping", "presence", "history"}


@pytest.mark.parametrize(("page", "text"), REQUESTS, ids=[f"{p}:{t[:30]}" for p, t in REQUESTS])
def test_every_documented_request_is_valid(page: str, text: str) -> None:
    request, _ = json.JSONDecoder().raw_decode(text)  # on one line, and JSON
    frames.check(request, "request")


# -- the handler is the contract --------------------------------------------------------


def send_bodies() -> st.SearchStrategy[dict[str, Any]]:
    """``sendMessage`` bodies: text, data, both or neither, each valid or not."""
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=3), inner),
        max_leaves=4,
    )
    return st.fixed_dictionaries(
        {"action": st.just("sendMessage")},
        optional={
            "text": st.one_of(message_texts(), JUNK),
            "data": json_values,
            "room": st.one_of(st.sampled_from(ROOMS), st.none(), hostile_strings(), JUNK),
            "event": st.one_of(
                st.sampled_from(["message", "order.updated", "presence", "history.x", "a b"]),
                JUNK,
            ),
            "id": st.one_of(st.none(), st.sampled_from(["k", "a-b_9", "a b", ""]), JUNK),
        },
    )


@given(body=send_bodies())
def test_every_send_the_handler_accepts_is_valid_and_makes_a_valid_frame(
    body: dict[str, Any],
) -> None:
    try:
        message, _ = message_of(SENDER, body)
        idempotency_key_of(body)
        raw = message.frame()
    except (FanoutError, ValueError, TypeError):  # what the handler answers 4xx
        return
    frames.check(body, "sendMessage")
    frames.check(body, "request")
    frame = frames.decode(raw)
    frames.check(frame, "messageFrame")
    assert ("data" in frame) == ("data" in body)


def test_with_data_the_handler_ignores_text() -> None:
    body = {"action": "sendMessage", "data": 1, "text": 5}
    frame = json.loads(message_of(SENDER, body)[0].frame())
    assert (frame["data"], "body" in frame) == (1, False)
    frames.check(body, "sendMessage")
    with pytest.raises(RequestError):
        message_of(SENDER, {"action": "sendMessage", "text": 5})
    assert not valid({"action": "sendMessage", "text": 5}, "sendMessage")


def test_a_backend_frame_is_valid() -> None:
    frame = frames.decode(Message(None, room=None, event="order.updated", data={"n": 1}).frame())
    assert frame["from"] is None


def history_bodies() -> st.SearchStrategy[dict[str, Any]]:
    """``history`` bodies: since, last and epoch each absent, null, a seq, or not one."""
    value = st.one_of(
        st.none(),
        st.integers(min_value=0, max_value=2**53 - 1),
        st.sampled_from([-1, 2**53, True, "1", 1.5, 2.0, [1]]),
    )
    return st.fixed_dictionaries(
        {"action": st.just("history"), "room": st.sampled_from([*ROOMS, None])},
        optional={"since": value, "last": value, "epoch": value},
    )


@given(body=history_bodies())
@example(body={"action": "history", "room": "r", "since": 3, "last": None})
@example(body={"action": "history", "room": None, "since": None, "last": 2, "epoch": None})
def test_the_schema_accepts_exactly_the_history_requests_the_handler_accepts(
    body: dict[str, Any],
) -> None:
    try:
        history_of(body)
        accepted = True
    except RequestError:
        accepted = False
    if accepted:
        frames.check(body, "history")
        frames.check(body, "request")
    # JSON Schema's integer takes 1.0, which a JSON parser hands the handler as a float.
    elif not any(isinstance(body.get(k), float) for k in ("since", "last", "epoch")):
        assert not valid(body, "history"), body
