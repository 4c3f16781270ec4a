"""Lambda handlers: wire each to its API Gateway WebSocket route (or ``websocket`` to all);
the other entry points (worker, publishers, schedules, authorizer) live in ``entries``.

Each answers ``{"statusCode": 200}`` on success and a 4xx with a JSON error for the
client's mistakes. No handler raises: an unexpected error is logged and answered 500.
Importing this module loads the router and what every route needs, and builds nothing;
a handler imports the rest (publishing, delivery, history, presence, the SQS worker) on
first use, and its runtime builds each client once per container.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from fanout_core import keys, logs, metrics
from fanout_core.answers import (
    Handler,
    Response,
    answers,
    error_response,
    joined,
    ok,
)
from fanout_core.entries import (
    authorizer,
    open_connections,
    publish_events,
    publish_http,
    sqs_worker,
    sweep,
)
from fanout_core.errors import NotAMemberError, NotConnectedError
from fanout_core.events import (
    RequestError,
    WebSocketRequest,
    history_of,
    idempotency_key_of,
    json_body,
    message_of,
    optional_room,
    query_rooms,
    required_room,
    sender_scope,
    websocket_request,
)
from fanout_core.policy import AccessRequest, Action, enforce
from fanout_core.result import report
from fanout_core.runtime import Runtime, get_runtime
from fanout_core.subprotocol import answer_headers
from fanout_core.tokens import admit, charge_answer, check_rooms, take

if TYPE_CHECKING:
    from fanout_core.store import Departure

__all__ = [
    "ROUTES",
    "Handler",
    "Response",
    "authorizer",
    "connect",
    "default",
    "disconnect",
    "error_response",
    "history",
    "join_room",
    "leave_room",
    "ok",
    "open_connections",
    "ping",
    "presence",
    "publish_events",
    "publish_http",
    "send_message",
    "sqs_worker",
    "sweep",
    "websocket",
]

log = logging.getLogger(__name__)
logs.setup()  # the level from FANOUT_LOG_LEVEL; on Lambda, JSON lines to stderr

# The actions a client names in a body, each routed to its handler.
CLIENT_ACTIONS = ("sendMessage", "joinRoom", "leaveRoom", "ping", "presence", "history")


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


def _position(runtime: Runtime, room: str) -> tuple[int, int] | None:
    """The room's (seq, epoch) for a member joining now; None with history off."""
    if runtime.config.history_seconds <= 0:
        return None
    at = runtime.history.joined(keys.scope_of(room))
    return at.seq, at.epoch


def _announce_joined(runtime: Runtime, request: WebSocketRequest, rooms: list[str]) -> None:
    # Presence is built (with delivery) only when it has something to announce.
    if runtime.config.presence_events and rooms:
        runtime.presence.joined(request.connection_id, request.principal, rooms)


def _announce_left(runtime: Runtime, departure: Departure) -> None:
    if runtime.config.presence_events and departure.rooms:
        runtime.presence.left(departure)


@answers
def connect(event: Any) -> Response:
    """``$connect``: store the connection, joined to ``?room=`` rooms if asked and allowed;
    ``Sec-WebSocket-Protocol: fanout`` in the answer when the client offered it."""
    request = websocket_request(event)
    rooms = query_rooms(event)  # each once: a room asked twice is asked of the policy once
    runtime = get_runtime()
    check_rooms(runtime, request, rooms)
    _allowed(request, "connect")
    for room in rooms:  # a room denied refuses the connection: nothing is written
        _allowed(request, "join", room)
    admit(runtime, request)  # the principal's connections and bucket
    # Kept in each membership: a client asks with joinRoom once open ($connect posts nothing).
    positions = {room: position for room in rooms if (position := _position(runtime, room))}
    runtime.store.connect(
        request.connection_id,
        request.endpoint,
        rooms=rooms,
        principal=request.principal,
        positions=positions,
    )
    metrics.add("Connects")
    _announce_joined(runtime, request, rooms)
    response = ok()
    # A browser that offered the `fanout` subprotocol (its token beside it) closes a socket
    # whose answer picks none.
    headers = answer_headers(event)
    if headers:
        response["headers"] = headers
    return response


@answers
def disconnect(event: Any) -> Response:
    """``$disconnect``: delete the connection and all its rows."""
    runtime = get_runtime()
    departure = runtime.store.remove(websocket_request(event).connection_id)
    metrics.add("Disconnects", departure.rows > 0)
    _announce_left(runtime, departure)
    return ok()


@answers
def send_message(event: Any) -> Response:
    """``sendMessage``: fan ``text`` or ``data`` out to ``room`` (a member only) or everyone."""
    from fanout_core.outgoing import outgoing
    from fanout_core.publishing import publish

    request = websocket_request(event)
    body = json_body(event)
    message, audience = message_of(request.connection_id, body)
    runtime = _allowed(request, "send", message.room)
    if message.room is not None and not runtime.store.is_member(
        request.connection_id, message.room
    ):
        raise NotAMemberError(request.connection_id, message.room)
    try:
        # Framed once, here; over 128 KB raises PayloadTooLargeError: a 413.
        ready = outgoing(message, audience, history=runtime.config.history_seconds > 0)
    except TypeError:
        raise RequestError(400, "invalid_data", "'data' holds text that is not Unicode") from None
    key = idempotency_key_of(body)
    take(runtime, request)  # last: a send refused for any reason costs no token
    publish(ready, runtime.strategy, runtime.history, key=key, sender_scope=sender_scope(request))
    return ok()


@answers
def join_room(event: Any) -> Response:
    """``joinRoom``: add the connection to ``room``; the answer is ``fanout.joined`` with the
    room's position when it joined (history on). A member's join changes nothing, announces
    nothing and answers the position kept when it joined (on ``$connect``'s ``?room=`` too)."""
    request = websocket_request(event)
    room = required_room(json_body(event))
    runtime = _allowed(request, "join", room)
    store, limit = runtime.store, runtime.config.max_rooms_per_connection
    partition = store.partition(request.connection_id)
    store.check_join(partition, request.connection_id, room, limit)
    take(runtime, request)  # a member's join too: every repeat costs
    held = partition.membership(room)
    if held is not None:
        kept = (held.joined_seq, held.joined_epoch)
        if kept[0] is not None and kept[1] is not None:
            return joined(room, (int(kept[0]), int(kept[1])))
        return joined(room, _position(runtime, room))  # a row kept none: history was off
    position = _position(runtime, room)  # before the row: later frames reach it either way
    if store.join(request.connection_id, room, partition=partition, limit=limit, position=position):
        _announce_joined(runtime, request, [room])
    return joined(room, position)


@answers
def leave_room(event: Any) -> Response:
    """``leaveRoom``: remove the connection from ``room`` (fine if it was not in it)."""
    from fanout_core.store import Departure

    request = websocket_request(event)
    room = required_room(json_body(event))
    runtime = get_runtime()
    take(runtime, request)
    if runtime.store.leave(request.connection_id, room):
        _announce_left(runtime, Departure(request.connection_id, request.principal, (room,), 1))
    return ok()


@answers
def history(event: Any) -> Response:
    """``history``: post the retained frames after ``since`` (or the ``last`` N), then
    ``history.end``, to the caller, if the policy allows (members only by default)."""
    from fanout_core.publishing import resume

    request = websocket_request(event)
    body = json_body(event)
    room = optional_room(body)
    runtime = get_runtime()
    if runtime.config.history_seconds <= 0:
        raise RequestError(400, "no_history", "this API keeps no history (FANOUT_HISTORY_SECONDS)")
    since, last, epoch = history_of(body)
    is_member = room is None or runtime.store.is_member(request.connection_id, room)
    _allowed(request, "history", room, is_member=is_member)
    take(runtime, request)
    result = resume(
        runtime.history,
        runtime.deliverer,
        request.connection_id,
        request.endpoint,
        room,
        since=since,
        last=last,
        epoch=epoch,
    )
    charge_answer(runtime, request, result.posted_bytes)
    report("history", result)
    return ok()


@answers
def presence(event: Any) -> Response:
    """``presence``: post the room's live members to the caller, if the policy allows."""
    request = websocket_request(event)
    room = required_room(json_body(event))
    runtime = get_runtime()
    is_member = runtime.store.is_member(request.connection_id, room)
    _allowed(request, "presence", room, is_member=is_member)
    take(runtime, request)
    result = runtime.presence.answer(request.connection_id, request.endpoint, room)
    charge_answer(runtime, request, result.posted_bytes)
    return ok()


@answers
def ping(event: Any) -> Response:
    """``ping``: extend the connection's TTL."""
    request = websocket_request(event)
    json_body(event)  # a body no other action would take is refused here too
    runtime = get_runtime()
    partition = runtime.store.partition(request.connection_id)
    if partition.connection is not None:
        take(runtime, request)  # a live connection's ping: a dead one's writes nothing
        if runtime.store.touch(request.connection_id, partition=partition):
            return ok()
    raise NotConnectedError(request.connection_id)


@answers
def default(event: Any) -> Response:
    """``$default``: a message with no known action."""
    websocket_request(event)
    action = json_body(event).get("action")
    shown = json.dumps(action)[:60]
    raise RequestError(
        400,
        "unknown_action",
        f"unknown action {shown}; valid actions: {', '.join(CLIENT_ACTIONS)}",
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
        route = action if action in CLIENT_ACTIONS else route
    return ROUTES.get(route if isinstance(route, str) else "", default)(event, context)
