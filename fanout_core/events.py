"""Reading API Gateway WebSocket events: what a handler needs, or a RequestError saying why not."""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fanout_core import keys
from fanout_core.audience import Audience
from fanout_core.errors import FanoutError, InvalidKeyError
from fanout_core.message import DEFAULT_EVENT, Message, validate_event

_DOMAIN = re.compile(r"[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?")
_STAGE = re.compile(r"[A-Za-z0-9_-]{1,128}")
# A body can be at most one WebSocket message; more is not from API Gateway.
MAX_BODY_BYTES = 256 * 1024
# How deep a body's arrays and objects may nest, the body itself counted: deeper cannot be
# framed again without running into the recursion limit.
MAX_JSON_DEPTH = 100


class RequestError(FanoutError):
    """The client's mistake: answered with ``status`` and a JSON error, never retried."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class WebSocketRequest:
    """The parts of a WebSocket event the handlers use."""

    connection_id: str
    endpoint: str  # https://{domainName}/{stage}
    principal: str | None
    # The authorizer's context: what API Gateway put beside principalId (strings, numbers,
    # booleans). Identity comes from here only, never from a body.
    context: Mapping[str, str | int | float | bool] = field(default_factory=dict)


def _mapping(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise RequestError(400, "malformed_event", f"{what} must be an object")
    return value


def websocket_request(event: object) -> WebSocketRequest:
    """The connection id, route, callback endpoint and principal of a WebSocket event."""
    context = _mapping(_mapping(event, "the event").get("requestContext"), "requestContext")
    try:
        connection_id = keys.validate_connection_id(context.get("connectionId"))
    except InvalidKeyError as error:
        raise RequestError(400, "malformed_event", str(error)) from None
    domain, stage = context.get("domainName"), context.get("stage")
    if not isinstance(domain, str) or not _DOMAIN.fullmatch(domain):
        raise RequestError(400, "malformed_event", "requestContext.domainName is not a host name")
    if not isinstance(stage, str) or not _STAGE.fullmatch(stage):
        raise RequestError(400, "malformed_event", "requestContext.stage is not a stage name")
    authorizer = context.get("authorizer")
    if not isinstance(authorizer, Mapping):
        authorizer = {}
    principal = authorizer.get("principalId")
    claims = {
        str(name): value
        for name, value in authorizer.items()
        if name != "principalId" and isinstance(value, str | int | float | bool)
    }
    return WebSocketRequest(
        connection_id=connection_id,
        endpoint=f"https://{domain}/{stage}",
        principal=principal if isinstance(principal, str) and principal else None,
        context=claims,
    )


def json_body(event: object) -> dict[str, Any]:
    """The event's body as a JSON object."""
    raw = _mapping(event, "the event").get("body")
    if raw is None:
        raise RequestError(400, "invalid_body", "the message has no body; send a JSON object")
    if not isinstance(raw, str):
        raise RequestError(400, "invalid_body", "the body must be a string")
    if len(raw) > MAX_BODY_BYTES:
        raise RequestError(413, "payload_too_large", "the body is over 256 KB")
    if _mapping(event, "the event").get("isBase64Encoded") is True:
        try:
            raw = base64.b64decode(raw, validate=True).decode()
        except ValueError:  # binascii.Error, UnicodeDecodeError, and non-ASCII input
            raise RequestError(400, "invalid_body", "the body is not base64 UTF-8") from None
    try:
        # ValueError: also an integer past Python's 4,300 digits, and what _finite refuses.
        body = json.loads(raw, parse_float=_finite, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise RequestError(400, "invalid_json", "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise RequestError(400, "invalid_body", "the body must be a JSON object")
    if _too_deep(body):
        raise RequestError(
            400, "invalid_json", f"the body nests deeper than {MAX_JSON_DEPTH} levels"
        )
    return body


def _finite(text: str) -> float:
    """A JSON number with a fraction or exponent; ValueError if it overflows to infinity."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is out of range")
    return value


def _no_constant(text: str) -> Any:
    """NaN and the infinities are not JSON, though Python's parser reads them."""
    raise ValueError(f"{text} is not JSON")


def _too_deep(body: object) -> bool:
    """True if arrays and objects nest deeper than MAX_JSON_DEPTH, the body counted."""
    level: list[dict[str, Any] | list[Any]] = [body] if isinstance(body, dict | list) else []
    for _ in range(MAX_JSON_DEPTH):
        level = [
            child
            for value in level
            for child in (value.values() if isinstance(value, dict) else value)
            if isinstance(child, dict | list)
        ]
        if not level:
            return False
    return True


def optional_room(body: Mapping[str, Any]) -> str | None:
    """The body's ``room``: None when absent or null, else a valid room name."""
    room = body.get("room")
    if room is None:
        return None
    return keys.validate_room(room)


def required_room(body: Mapping[str, Any]) -> str:
    """The body's ``room``, which must be there."""
    if body.get("room") is None:
        raise RequestError(400, "missing_room", "this action needs a 'room'")
    return keys.validate_room(body["room"])


def query_rooms(event: object) -> list[str]:
    """Rooms asked for on ``$connect`` with ``?room=NAME`` (repeatable), each once, in order."""
    event = _mapping(event, "the event")
    multi = event.get("multiValueQueryStringParameters")
    single = event.get("queryStringParameters")
    values: list[object] = []
    if isinstance(multi, Mapping) and isinstance(multi.get("room"), list):
        values = list(multi["room"])
    elif isinstance(single, Mapping) and "room" in single:
        values = [single["room"]]
    elif single is not None and not isinstance(single, Mapping):
        raise RequestError(400, "malformed_event", "queryStringParameters must be an object")
    return list(dict.fromkeys(keys.validate_room(value) for value in values))


def message_of(sender: str, body: Mapping[str, Any]) -> tuple[Message, Audience]:
    """The message a ``sendMessage`` body asks for, and its audience: text (or data), room
    and event checked, each once."""
    text = None if "data" in body else text_of(body)
    audience = Audience(room=body.get("room"))
    name = validate_event(body.get("event", DEFAULT_EVENT))
    return Message(sender, text, audience.room, event=name, data=body.get("data")), audience


def text_of(body: Mapping[str, Any]) -> str:
    """The body's ``text``: a string of valid Unicode."""
    text = body.get("text")
    if not isinstance(text, str):
        raise RequestError(400, "invalid_text", "'text' must be a string (or send 'data')")
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:  # a lone surrogate ("\ud800") that JSON let through
            raise RequestError(400, "invalid_text", "'text' is not valid Unicode") from None
    return text


def idempotency_key_of(body: Mapping[str, Any]) -> str | None:
    """The body's ``id``: None when absent or null, else a valid idempotency key."""
    return None if body.get("id") is None else keys.validate_idempotency_key(body["id"])


def sender_scope(request: WebSocketRequest) -> str:
    """Whose idempotency keys a client's key is among: its user's, so that a retry after a
    reconnect is still a duplicate, or (no principal) its connection's."""
    if request.principal is not None:
        return "#" + keys.user_index_pk(request.principal)
    return f"#{keys.CONNECTION_PREFIX}{request.connection_id}"


def history_of(body: Mapping[str, Any]) -> tuple[int | None, int | None, int | None]:
    """A ``history`` body's ``since``, ``last`` and ``epoch``: each absent, null or a seq;
    exactly one of ``since`` and ``last`` a seq."""
    since, last, epoch = body.get("since"), body.get("last"), body.get("epoch")
    if (since is None) == (last is None):
        raise RequestError(400, "invalid_history", "give 'since' (a seq) or 'last' (a count)")
    for value in (since, last, epoch):
        if value is not None and (type(value) is not int or not 0 <= value <= keys.MAX_SEQ):
            raise RequestError(
                400, "invalid_history", "'since', 'last' and 'epoch' are integers >= 0"
            )
    return since, last, epoch
