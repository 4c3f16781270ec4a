"""Lambda handlers: wire each to its API Gateway WebSocket route (or ``websocket`` to all).

Each answers ``{"statusCode": 200}`` on success and a 4xx with a JSON error for the
client's mistakes. No handler raises: an unexpected error is logged and answered 500.
Nothing here builds a client at import; the first invocation does, once per container.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from typing import Any

from fanout_core import keys
from fanout_core.errors import (
    ConfigError,
    ForbiddenError,
    InvalidConnectionIdError,
    InvalidEventError,
    InvalidIdempotencyKeyError,
    InvalidPrincipalError,
    InvalidRoomNameError,
    NotAMemberError,
    NotConnectedError,
    PayloadTooLargeError,
    PolicyError,
    RateLimitedError,
)
from fanout_core.events import (
    RequestError,
    WebSocketRequest,
    json_body,
    optional_room,
    query_rooms,
    required_room,
    websocket_request,
)
from fanout_core.message import DEFAULT_EVENT, Message, validate_event
from fanout_core.policy import AccessRequest, Action, enforce
from fanout_core.runtime import Runtime, get_runtime
from fanout_core.store import Departure
from fanout_core.worker import process_records

log = logging.getLogger(__name__)

Event = dict[str, Any]
Response = dict[str, Any]
Handler = Callable[[Any, Any], Response]

ACTIONS = ("sendMessage", "joinRoom", "leaveRoom", "ping", "presence", "history")
_THROTTLED = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "LimitExceededException",
}


def ok() -> Response:
    """The success answer."""
    return {"statusCode": 200}


def error_response(status: int, code: str, message: str, **extra: Any) -> Response:
    """A JSON error answer."""
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"error": code, "message": message, **extra}),
    }


def _backend_code(error: BaseException) -> str:
    # PynamoDB wraps botocore's ClientError; both carry the AWS error code somewhere.
    code = getattr(error, "cause_response_code", None)
    if code is None:
        response = getattr(error, "response", None)
        if isinstance(response, dict):
            code = response.get("Error", {}).get("Code")
    return str(code or "")


# What each of the library's errors is answered with (the first class that matches).
_ANSWERED: tuple[tuple[type[Exception], int, str], ...] = (
    (InvalidRoomNameError, 400, "invalid_room"),
    (InvalidConnectionIdError, 400, "invalid_connection_id"),
    (InvalidPrincipalError, 400, "invalid_principal"),
    (InvalidEventError, 400, "invalid_event"),
    (InvalidIdempotencyKeyError, 400, "invalid_id"),
    (ForbiddenError, 403, "forbidden"),
    (NotAMemberError, 403, "not_a_member"),
    (NotConnectedError, 403, "not_connected"),
    (PayloadTooLargeError, 413, "payload_too_large"),
)


def _answers(handler: Callable[[Any], Response]) -> Handler:
    """Turn every error into the answer the client should get."""

    @functools.wraps(handler)
    def wrapper(event: Any, context: Any = None) -> Response:
        try:
            return handler(event)
        except RequestError as error:
            return error_response(error.status, error.code, str(error))
        except RateLimitedError as error:
            retry_after = round(error.retry_after, 3)
            return error_response(429, "rate_limited", str(error), retry_after=retry_after)
        except PolicyError as error:
            return error_response(500, "policy_failed", str(error))  # logged where it failed
        except ConfigError as error:
            log.error("misconfigured: %s", error)
            return error_response(500, "misconfigured", str(error))
        except Exception as error:
            for kind, status, code in _ANSWERED:
                if isinstance(error, kind):
                    return error_response(status, code, str(error))
            if _backend_code(error) in _THROTTLED:
                log.warning("backend throttled %s: %s", handler.__name__, error)
                return error_response(503, "throttled", "the backend is busy; try again")
            log.exception("%s failed", handler.__name__)
            return error_response(500, "internal_error", "internal error")

    return wrapper


def _allowed(
    request: WebSocketRequest,
    action: Action,
    room: str | None = None,
    *,
    is_member: bool | None = None,
) -> Runtime:
    """The runtime, once its policy allowed ``action``; ForbiddenError or PolicyError if not."""
    runtime = get_runtime()
    enforce(
        runtime.policy,
        AccessRequest(
            action,
            request.connection_id,
            request.principal,
            request.context,
            room,
            is_member,
        ),
    )
    return runtime


@_answers
def connect(event: Any) -> Response:
    """``$connect``: store the connection, joined to ``?room=`` rooms if asked and allowed."""
    request = websocket_request(event)
    rooms = query_rooms(event)
    runtime = _allowed(request, "connect")
    for room in rooms:  # a room denied refuses the connection: nothing is written
        _allowed(request, "join", room)
    runtime.store.connect(
        request.connection_id, request.endpoint, rooms=rooms, principal=request.principal
    )
    runtime.presence.joined(request.connection_id, request.principal, rooms)
    return ok()


@_answers
def disconnect(event: Any) -> Response:
    """``$disconnect``: delete the connection and all its rows."""
    runtime = get_runtime()
    runtime.presence.left(runtime.store.remove(websocket_request(event).connection_id))
    return ok()


@_answers
def send_message(event: Any) -> Response:
    """``sendMessage``: fan ``text`` or ``data`` out to ``room`` (a member only) or everyone."""
    request = websocket_request(event)
    body = json_body(event)
    message = message_of(request.connection_id, body)
    runtime = _allowed(request, "send", message.room)
    if message.room is not None and not runtime.store.is_member(
        request.connection_id, message.room
    ):
        raise NotAMemberError(request.connection_id, message.room)
    try:
        message.frame()  # over 128 KB raises PayloadTooLargeError: a 413
    except TypeError:
        raise RequestError(400, "invalid_data", "'data' holds text that is not Unicode") from None
    key = idempotency_key_of(body)
    if runtime.limiter is not None:  # last: a send refused for any reason costs no token
        runtime.limiter.take(request.connection_id)
    result = runtime.publish(message, key=key, sender_scope=sender_scope(request))
    log.info("fanout %s", json.dumps(result.summary()))
    return ok()


def idempotency_key_of(body: dict[str, Any]) -> str | None:
    """The body's ``id``: None when absent or null, else a valid idempotency key."""
    return None if body.get("id") is None else keys.validate_idempotency_key(body["id"])


def sender_scope(request: WebSocketRequest) -> str:
    """Whose idempotency keys a client's key is among: its user's, so that a retry after a
    reconnect is still a duplicate, or (no principal) its connection's."""
    if request.principal is not None:
        return "#" + keys.user_index_pk(request.principal)
    return f"#{keys.CONNECTION_PREFIX}{request.connection_id}"


def message_of(sender: str, body: dict[str, Any]) -> Message:
    """The message a ``sendMessage`` body asks for: text (or data), room and event checked."""
    text = None if "data" in body else text_of(body)
    room = optional_room(body)
    name = validate_event(body.get("event", DEFAULT_EVENT))
    return Message(sender, text, room, event=name, data=body.get("data"))


def text_of(body: dict[str, Any]) -> str:
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


@_answers
def join_room(event: Any) -> Response:
    """``joinRoom``: add the connection to ``room``."""
    request = websocket_request(event)
    room = required_room(json_body(event))
    runtime = _allowed(request, "join", room)
    runtime.store.join(request.connection_id, room)
    runtime.presence.joined(request.connection_id, request.principal, [room])
    return ok()


@_answers
def leave_room(event: Any) -> Response:
    """``leaveRoom``: remove the connection from ``room`` (fine if it was not in it)."""
    request = websocket_request(event)
    room = required_room(json_body(event))
    runtime = get_runtime()
    if runtime.store.leave(request.connection_id, room):
        runtime.presence.left(Departure(request.connection_id, request.principal, (room,), 1))
    return ok()


@_answers
def history(event: Any) -> Response:
    """``history``: post the retained frames after ``since`` (or the ``last`` N), then
    ``history.end``, to the caller, if the policy allows (members only by default)."""
    request = websocket_request(event)
    body = json_body(event)
    room = optional_room(body)
    runtime = get_runtime()
    if not runtime.history.enabled:
        raise RequestError(400, "no_history", "this API keeps no history (FANOUT_HISTORY_SECONDS)")
    since, last, epoch = history_of(body)
    is_member = room is None or runtime.store.is_member(request.connection_id, room)
    _allowed(request, "history", room, is_member=is_member)
    if runtime.limiter is not None:  # a resume posts as much as a send: it takes a token
        runtime.limiter.take(request.connection_id)
    result = runtime.resume(
        request.connection_id, request.endpoint, room, since=since, last=last, epoch=epoch
    )
    log.info("history %s", json.dumps(result.summary()))
    return ok()


def history_of(body: dict[str, Any]) -> tuple[int | None, int | None, int | None]:
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


@_answers
def presence(event: Any) -> Response:
    """``presence``: post the room's live members to the caller, if the policy allows."""
    request = websocket_request(event)
    room = required_room(json_body(event))
    runtime = get_runtime()
    is_member = runtime.store.is_member(request.connection_id, room)
    _allowed(request, "presence", room, is_member=is_member)
    runtime.presence.answer(request.connection_id, request.endpoint, room)
    runtime.presence.settle()
    return ok()


@_answers
def ping(event: Any) -> Response:
    """``ping``: extend the connection's TTL."""
    request = websocket_request(event)
    if not get_runtime().store.touch(request.connection_id):
        raise NotConnectedError(request.connection_id)
    return ok()


@_answers
def default(event: Any) -> Response:
    """``$default``: a message with no known action."""
    websocket_request(event)
    action = json_body(event).get("action")
    shown = json.dumps(action)[:60]
    raise RequestError(
        400, "unknown_action", f"unknown action {shown}; valid actions: {', '.join(ACTIONS)}"
    )


# Route key -> handler: what to wire in API Gateway, and what `websocket` dispatches on.
ROUTES: dict[str, Handler] = {
    "$connect": connect,
    "$disconnect": disconnect,
    "$default": default,
    "sendMessage": send_message,
    "joinRoom": join_room,
    "leaveRoom": leave_room,
    "ping": ping,
    "presence": presence,
    "history": history,
}


def websocket(event: Any, context: Any = None) -> Response:
    """One entry for every route: dispatch by ``routeKey`` (by body action on ``$default``)."""
    route = None
    request_context = event.get("requestContext") if isinstance(event, dict) else None
    if isinstance(request_context, dict):
        route = request_context.get("routeKey")
    if route == "$default" and isinstance(event, dict) and isinstance(event.get("body"), str):
        try:
            action = json.loads(event["body"]).get("action")
        except (ValueError, AttributeError, RecursionError):
            action = None
        route = action if action in ACTIONS else route
    return ROUTES.get(route if isinstance(route, str) else "", default)(event, context)


def sqs_worker(event: Any, context: Any = None) -> dict[str, list[dict[str, str]]]:
    """SQS worker for ``sqs_batched``: post each record, report only failed ones."""
    runtime = get_runtime()
    try:
        response, results = process_records(event, runtime.deliverer, runtime.tasks)
        runtime.presence.settle()
    except Exception:
        log.exception("unreadable SQS event")
        records = event.get("Records") if isinstance(event, dict) else None
        ids = [r.get("messageId") for r in records or [] if isinstance(r, dict)]
        return {"batchItemFailures": [{"itemIdentifier": i} for i in ids if isinstance(i, str)]}
    for result in results:
        log.info("sqs_worker %s", json.dumps(result.summary()))
    return response


def sweep(event: Any = None, context: Any = None) -> dict[str, int]:
    """Scheduled: delete every expired row; returns what was deleted."""
    result = get_runtime().store.sweep()
    log.info("sweep deleted %d connections, %d memberships", result.connections, result.memberships)
    return {"connections": result.connections, "memberships": result.memberships}
