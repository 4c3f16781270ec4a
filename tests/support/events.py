"""Lambda events in the shapes AWS documents, loaded from tests/fixtures and filled in."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"
DOMAIN = "abcd123.execute-api.us-east-1.amazonaws.com"
STAGE = "prod"


@cache
def _fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def fixture(name: str) -> dict[str, Any]:
    """A fresh copy of a fixture."""
    return copy.deepcopy(_fixture(name))


def _with_connection(event: dict[str, Any], connection_id: str) -> dict[str, Any]:
    event["requestContext"]["connectionId"] = connection_id
    event["requestContext"]["domainName"] = DOMAIN
    event["requestContext"]["stage"] = STAGE
    return event


def connect_event(
    connection_id: str,
    *,
    rooms: list[str] | None = None,
    principal: str | None = None,
    claims: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``$connect`` event, with ``?room=`` for each room, and the authorizer's identity."""
    event = _with_connection(fixture("websocket_connect"), connection_id)
    if rooms:
        event["queryStringParameters"] = {"room": rooms[-1]}
        event["multiValueQueryStringParameters"] = {"room": list(rooms)}
    if principal is not None or claims:
        event["requestContext"]["authorizer"] = {"principalId": principal, **(claims or {})}
    return event


def disconnect_event(connection_id: str) -> dict[str, Any]:
    """A ``$disconnect`` event."""
    return _with_connection(fixture("websocket_disconnect"), connection_id)


def message_event(connection_id: str, body: Any, *, route: str | None = None) -> dict[str, Any]:
    """A message event; ``body`` is JSON-encoded unless it is already a string (or None)."""
    event = _with_connection(fixture("websocket_message"), connection_id)
    event["body"] = body if body is None or isinstance(body, str) else json.dumps(body)
    if route is None:
        action = body.get("action") if isinstance(body, dict) else None
        route = action if action in ("sendMessage", "joinRoom", "leaveRoom", "ping") else "$default"
    event["requestContext"]["routeKey"] = route
    return event


def sqs_event(bodies: list[str]) -> dict[str, Any]:
    """An SQS event with one record per body."""
    template = fixture("sqs_event")["Records"][0]
    records = []
    for i, body in enumerate(bodies):
        record = copy.deepcopy(template)
        record["messageId"] = f"msg-{i}"
        record["body"] = body
        records.append(record)
    return {"Records": records}
