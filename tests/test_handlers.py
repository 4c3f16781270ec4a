"""Handlers: documented event shapes in, a 200 or a 4xx with a JSON error out, never a raise."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from fanout_core import handlers
from fanout_core.local.management_api import LocalManagementApi
from fanout_core.message import MAX_PAYLOAD_BYTES
from fanout_core.runtime import set_runtime
from tests.support import frames
from tests.support.backends import Backend
from tests.support.clock import FakeClock
from tests.support.events import connect_event, disconnect_event, message_event, sqs_event
from tests.support.harness import Chat, make_chat
from tests.support.rows import rooms_of


@pytest.fixture
def chat(backend: Backend, local_api: LocalManagementApi, clock: FakeClock) -> Chat:
    return make_chat(backend, local_api, clock, "gsi_query")


@pytest.fixture(scope="module")
def _input_chat(dynalite_url: str) -> Iterator[Chat]:
    with LocalManagementApi() as api:
        chat = make_chat(Backend("dynalite", dynalite_url), api, FakeClock(), "gsi_query")
        yield chat
        chat.runtime.close()


@pytest.fixture
def input_chat(_input_chat: Chat) -> Chat:
    """One table for input refused before any write: each test checks it is unchanged."""
    set_runtime(_input_chat.runtime)
    return _input_chat


def error_body(response: dict[str, Any]) -> dict[str, Any]:
    """The body of a JSON error answer, valid by the schema's ``errorAnswer``."""
    assert response["headers"]["Content-Type"] == "application/json"
    body: dict[str, Any] = frames.check(json.loads(response["body"]), "errorAnswer")
    return body


def error_of(response: dict[str, Any]) -> tuple[int, str]:
    """(status, error code) of a JSON error answer."""
    return response["statusCode"], error_body(response)["error"]


def table_dump(chat: Chat) -> list[dict[str, Any]]:
    return sorted((row.serialize() for row in chat.runtime.store.rows()), key=str)


def test_connect_with_rooms_and_principal(chat: Chat) -> None:
    cid = chat.api.connections.open()
    event = connect_event(cid, rooms=["a", "b"], principal="user-1")
    assert handlers.connect(event, None) == {"statusCode": 200}
    assert sorted(rooms_of(chat.runtime.store, cid)) == ["a", "b"]
    row = chat.runtime.store.get_connection(cid)
    assert row is not None
    assert row.principal == "user-1"
    assert row.endpoint == "https://abcd123.execute-api.us-east-1.amazonaws.com/prod"
    assert chat.api.total("POST") == 0  # never a post from $connect


@pytest.mark.parametrize(
    ("offered", "answered"),
    [
        ("fanout, eyJ.eyJ.sig", "fanout"),  # a browser signing in: its token beside it
        ("fanout", "fanout"),
        ("chat, fanout", "fanout"),
        ("chat", None),
        (None, None),
    ],
)
def test_connect_answers_the_fanout_subprotocol_when_offered(
    chat: Chat, offered: str | None, answered: str | None
) -> None:
    """API Gateway passes the handler's Sec-WebSocket-Protocol to the client; a browser
    closes a socket whose answer picks none of the subprotocols it offered."""
    cid = chat.api.connections.open()
    event = connect_event(cid)
    if offered is not None:
        # Header names arrive as the client sent them: look them up in any case.
        event["headers"]["sec-websocket-protocol"] = offered
        event["multiValueHeaders"]["sec-websocket-protocol"] = [offered]
    response = handlers.connect(event, None)
    expected = {"Sec-WebSocket-Protocol": answered} if answered else None
    assert response.get("headers") == expected
    assert response["statusCode"] == 200


def test_connect_with_bad_room_is_refused_and_writes_nothing(chat: Chat) -> None:
    response = handlers.connect(connect_event("A1", rooms=["ok", "x#CONN#y"]), None)
    assert error_of(response) == (400, "invalid_room")
    assert table_dump(chat) == []


def test_connect_with_malformed_query_string(chat: Chat) -> None:
    event = connect_event("A1")
    event["queryStringParameters"] = "room=a"
    assert error_of(handlers.connect(event, None)) == (400, "malformed_event")
    assert table_dump(chat) == []


def test_disconnect_is_idempotent(chat: Chat) -> None:
    a = chat.connect(rooms=["r"])
    assert handlers.disconnect(disconnect_event(a), None) == {"statusCode": 200}
    assert handlers.disconnect(disconnect_event(a), None) == {"statusCode": 200}
    assert table_dump(chat) == []


def test_ping_extends_ttl(chat: Chat) -> None:
    a = chat.connect(rooms=["r"])
    chat.clock.advance(chat.runtime.config.ttl_seconds - 1)
    assert chat.call(a, {"action": "ping"}) == {"statusCode": 200}
    chat.clock.advance(60)
    assert chat.runtime.store.get_connection(a) is not None
    assert chat.runtime.store.is_member(a, "r")


def test_ping_for_unknown_connection(chat: Chat) -> None:
    assert error_of(chat.call("ghost", {"action": "ping"})) == (403, "not_connected")


def test_join_for_unknown_connection(chat: Chat) -> None:
    response = chat.call("ghost", {"action": "joinRoom", "room": "r"})
    assert error_of(response) == (403, "not_connected")
    assert table_dump(chat) == []


def test_sender_receives_own_message_with_documented_frame(chat: Chat) -> None:
    a = chat.connect()
    assert chat.send(a, "hi") == {"statusCode": 200}
    (frame,) = chat.frames(a)
    # The seed's {from, body} is all there; the envelope adds the event's name.
    assert set(frame) == {"id", "event", "from", "room", "body"}
    assert (frame["from"], frame["body"], frame["room"], frame["event"]) == (
        a,
        "hi",
        None,
        "message",
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"data": {"order": 42, "items": [1, 2]}}, {"order": 42, "items": [1, 2]}),
        ({"data": None, "event": "typing"}, None),
        ({"data": "text as data", "event": "note.v2:x"}, "text as data"),
        ({"data": [], "text": "ignored when data is there"}, []),
    ],
)
def test_send_message_with_data_and_an_event(
    chat: Chat, body: dict[str, Any], expected: Any
) -> None:
    a = chat.connect(rooms=["r"])
    b = chat.connect(rooms=["r"])
    assert chat.call(a, {"action": "sendMessage", "room": "r", **body}) == {"statusCode": 200}
    for cid in (a, b):
        (frame,) = chat.frames(cid)
        assert set(frame) == {"id", "event", "from", "room", "data"}
        assert frame["data"] == expected
        assert frame["event"] == body.get("event", "message")
        assert (frame["from"], frame["room"]) == (a, "r")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"data": 1, "event": "presence.join"}, "invalid_event"),
        ({"data": 1, "event": "history"}, "invalid_event"),
        ({"data": 1, "event": "a b"}, "invalid_event"),
        ({"data": 1, "event": 7}, "invalid_event"),
        ({"data": 1, "event": "x" * 65}, "invalid_event"),
        ({"data": "\ud800"}, "invalid_data"),
        ({"data": {"k": ["\udfff"]}}, "invalid_data"),
        ({"event": "note"}, "invalid_text"),
        ({"data": "x" * (128 * 1024)}, "payload_too_large"),
    ],
)
def test_send_message_refuses_bad_data_or_event(
    chat: Chat, body: dict[str, Any], code: str
) -> None:
    a = chat.connect()
    raw = json.dumps({"action": "sendMessage", **body})
    response = chat.call(a, raw)
    assert error_of(response)[1] == code
    assert chat.frames(a) == []
    assert chat.api.total("POST") == 0


def test_base64_body(chat: Chat) -> None:
    a = chat.connect()
    event = message_event(a, None, route="sendMessage")
    event["body"] = base64.b64encode(b'{"action":"sendMessage","text":"b64"}').decode()
    event["isBase64Encoded"] = True
    assert handlers.send_message(event, None) == {"statusCode": 200}
    assert chat.texts(a) == ["b64"]


BAD_BODIES: list[tuple[Any, str, int, str]] = [
    (None, "sendMessage", 400, "invalid_body"),
    ("not json", "sendMessage", 400, "invalid_json"),
    ("[1, 2]", "sendMessage", 400, "invalid_body"),
    ('"text"', "sendMessage", 400, "invalid_body"),
    ({"action": "sendMessage"}, "sendMessage", 400, "invalid_text"),
    ({"action": "sendMessage", "text": 5}, "sendMessage", 400, "invalid_text"),
    ({"action": "sendMessage", "text": "x", "room": 5}, "sendMessage", 400, "invalid_room"),
    ({"action": "sendMessage", "text": "x", "room": "a#b"}, "sendMessage", 400, "invalid_room"),
    ({"action": "sendMessage", "text": "x", "room": ""}, "sendMessage", 400, "invalid_room"),
    ({"action": "sendMessage", "text": "x", "room": "nope"}, "sendMessage", 403, "not_a_member"),
    (
        {"action": "sendMessage", "text": "x" * MAX_PAYLOAD_BYTES},
        "sendMessage",
        413,
        "payload_too_large",
    ),
    ({"action": "joinRoom"}, "joinRoom", 400, "missing_room"),
    ({"action": "joinRoom", "room": "x" * 10_000}, "joinRoom", 400, "invalid_room"),
    ({"action": "joinRoom", "room": "a\x00"}, "joinRoom", 400, "invalid_room"),
    ({"action": "joinRoom", "room": ["r"]}, "joinRoom", 400, "invalid_room"),
    ({"action": "leaveRoom", "room": "ROOM#x"}, "leaveRoom", 400, "invalid_room"),
    ({"action": "dance"}, "$default", 400, "unknown_action"),
    ({"text": "no action"}, "$default", 400, "unknown_action"),
    ("{bad", "$default", 400, "invalid_json"),
]


@pytest.mark.parametrize(("body", "route", "status", "code"), BAD_BODIES)
def test_bad_bodies_get_a_json_error_and_change_nothing(
    input_chat: Chat, body: Any, route: str, status: int, code: str
) -> None:
    chat = input_chat
    a = chat.connect(rooms=["r"])
    before = table_dump(chat)
    posts_before = chat.api.total("POST")
    event = message_event(a, body, route=route)
    assert error_of(handlers.websocket(event, None)) == (status, code)
    assert table_dump(chat) == before
    assert chat.api.total("POST") == posts_before


MALFORMED_EVENTS: list[Any] = [
    None,
    [],
    "event",
    {},
    {"requestContext": None},
    {"requestContext": {"connectionId": "A1"}},
    {"requestContext": {"connectionId": "a#b", "domainName": "x.y", "stage": "p"}},
    {"requestContext": {"connectionId": 7, "domainName": "x.y", "stage": "p"}},
    {"requestContext": {"connectionId": "A1", "domainName": "x/y", "stage": "p"}},
    {"requestContext": {"connectionId": "A1", "domainName": "x.y", "stage": "a/b"}},
]


@pytest.mark.parametrize("event", MALFORMED_EVENTS)
@pytest.mark.parametrize(
    "handler",
    [
        handlers.connect,
        handlers.disconnect,
        handlers.send_message,
        handlers.join_room,
        handlers.leave_room,
        handlers.ping,
        handlers.default,
        handlers.websocket,
    ],
)
def test_malformed_events_are_400(input_chat: Chat, handler: handlers.Handler, event: Any) -> None:
    chat = input_chat
    before = table_dump(chat)
    response = handler(event, None)
    assert response["statusCode"] == 400
    assert error_body(response)["error"] in ("malformed_event", "invalid_body")
    assert table_dump(chat) == before


def test_websocket_routes_by_route_key_and_default_by_action(chat: Chat) -> None:
    cid = chat.api.connections.open()
    assert handlers.websocket(connect_event(cid), None) == {"statusCode": 200}
    joined = message_event(cid, {"action": "joinRoom", "room": "r"}, route="$default")
    assert handlers.websocket(joined, None) == {"statusCode": 200}
    assert rooms_of(chat.runtime.store, cid) == ["r"]
    assert handlers.websocket(disconnect_event(cid), None) == {"statusCode": 200}
    assert table_dump(chat) == []


def test_default_handler_lists_actions(chat: Chat) -> None:
    a = chat.connect()
    status, code = error_of(handlers.default(message_event(a, {"action": "x"}), None))
    body = error_body(handlers.default(message_event(a, {"action": "x"}), None))
    assert (status, code) == (400, "unknown_action")
    assert "sendMessage, joinRoom, leaveRoom, ping" in body["message"]


def test_sweep_handler(chat: Chat) -> None:
    chat.connect(rooms=["a", "b"])
    chat.clock.advance(chat.runtime.config.ttl_seconds + 1)
    live = chat.connect()
    assert handlers.sweep({}, None) == {"connections": 1, "memberships": 2}
    assert chat.row_ids() == {live}


def test_throttled_backend_is_503_and_writes_nothing(
    chat: Chat, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pynamodb.exceptions import PutError

    a = chat.connect()
    before = table_dump(chat)

    def throttled(*args: Any, **kwargs: Any) -> Any:
        error = PutError("throttled")
        error.cause = type("Cause", (), {"response": {"Error": {"Code": "ThrottlingException"}}})()
        raise error

    monkeypatch.setattr(chat.runtime.store.models.membership, "save", throttled)
    response = chat.call(a, {"action": "joinRoom", "room": "r"})
    assert error_of(response) == (503, "throttled")
    assert table_dump(chat) == before


def test_unexpected_error_is_500_json(chat: Chat, monkeypatch: pytest.MonkeyPatch) -> None:
    a = chat.connect()

    def boom(*args: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(chat.runtime.store, "touch", boom)
    response = chat.call(a, {"action": "ping"})
    assert error_of(response) == (500, "internal_error")
    assert "boom" not in response["body"]


def test_sqs_worker_reports_unreadable_records(chat: Chat) -> None:
    event = sqs_event(["not json", '{"v": 9}'])
    assert handlers.sqs_worker(event, None) == {
        "batchItemFailures": [{"itemIdentifier": "msg-0"}, {"itemIdentifier": "msg-1"}]
    }
    assert handlers.sqs_worker({"no": "records"}, None) == {"batchItemFailures": []}


def test_import_builds_nothing_and_pulls_no_test_cli_or_server_code() -> None:
    code = """
import sys
import fanout_core.handlers
loaded = sorted(m for m in sys.modules if m.startswith(('fanout_core', 'pynamodb', 'boto3')))
heavy = [m for m in ('asyncio', 'pynamodb', 'boto3', 'botocore') if m in sys.modules]
import fanout_core.runtime, fanout_core.delivery.posting
banned = [m for m in sys.modules if m.split('.')[0] in (
    'moto', 'pytest', 'hypothesis', 'websockets', 'rich', 'flask', 'werkzeug', 'tests',
    'strategies')
    or m in ('fanout_core.cli', 'fanout_core.table', 'fanout_core.local')
    or m.startswith(('fanout_core.local.', 'fanout_core.cli.', 'fanout_core.strategies.'))]
import boto3
print(json.dumps([loaded, heavy, banned, fanout_core.runtime._runtime,
                  len(fanout_core.delivery.posting._clients), boto3.DEFAULT_SESSION]))
"""
    out = subprocess.run(
        [sys.executable, "-c", "import json\n" + code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    loaded, heavy, banned, runtime, clients, session = json.loads(out)
    # The router and what every route needs: no store, no delivery, no AWS SDK.
    assert loaded == [
        "fanout_core",
        "fanout_core._lazy",
        "fanout_core.answers",
        "fanout_core.audience",
        "fanout_core.config",
        "fanout_core.emf",
        "fanout_core.entries",
        "fanout_core.errors",
        "fanout_core.events",
        "fanout_core.handlers",
        "fanout_core.keys",
        "fanout_core.logs",
        "fanout_core.message",
        "fanout_core.metrics",
        "fanout_core.policy",
        "fanout_core.result",
        "fanout_core.runtime",
        "fanout_core.strategy",
        "fanout_core.subprotocol",
        "fanout_core.tokens",
    ]
    assert (heavy, banned, runtime, clients, session) == ([], [], None, 0, None)


# What a route may leave unimported: a $connect (open policy, no presence events) and a ping
# never load delivery, the queue, history, presence, the rate limit or publishing.
NOT_FOR_CONNECT = (
    "fanout_core.delivery.deliverer",
    "fanout_core.delivery.http_poster",
    "fanout_core.queue",
    "fanout_core.worker",
    "fanout_core.history",
    "fanout_core.presence",
    "fanout_core.ratelimit",
    "fanout_core.publishing",
    "fanout_core.outgoing",
)


def test_a_connect_imports_only_what_it_runs() -> None:
    code = f"""
import json, sys
import moto
with moto.mock_aws():
    from fanout_core import handlers
    from fanout_core.config import FanoutConfig
    from fanout_core.table import create_table
    from tests.support.events import connect_event, message_event
    create_table(FanoutConfig.from_env())
    answers = [handlers.connect(connect_event("C1", rooms=["lobby"]), None)["statusCode"],
               handlers.ping(message_event("C1", {{"action": "ping"}}), None)["statusCode"]]
print(json.dumps([answers, [m for m in {NOT_FOR_CONNECT!r} if m in sys.modules]]))
"""
    env = {**os.environ, "FANOUT_TABLE": "imports", "FANOUT_STRATEGY": "sqs_batched"}
    env["FANOUT_QUEUE_URL"] = "http://127.0.0.1:9/queue"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env=env,
    ).stdout.strip()
    answers, imported = json.loads(out.splitlines()[-1])
    assert answers == [200, 200]
    assert imported == []
