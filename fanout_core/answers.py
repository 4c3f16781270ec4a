"""What a handler answers: 200, or a JSON error for the client's mistake, never a raise.

``answers`` wraps a handler: every error becomes the answer the client should get, an
unexpected one is logged and answered 500, and the invocation ends (``Runtime.finish``:
departures found by 410s are announced) whatever happened. ``entry`` wraps the other entry
points (the worker, the publishers, the schedules, the authorizer): one invocation too.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from fanout_core import metrics
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
    TooManyConnectionsError,
    TooManyRoomsError,
)
from fanout_core.events import RequestError
from fanout_core.message import new_message_id
from fanout_core.runtime import current_runtime

log = logging.getLogger("fanout_core.handlers")

Response = dict[str, Any]
Handler = Callable[[Any, Any], Response]
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


class Entry(Protocol[R_co]):
    """An entry point Lambda calls with an event and a context (a schedule's may have neither)."""

    def __call__(self, event: Any = None, context: Any = None) -> R_co: ...


_THROTTLED = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "LimitExceededException",
}


def ok() -> Response:
    """The success answer."""
    return {"statusCode": 200}


def joined(room: str, position: tuple[int, int] | None) -> Response:
    """The answer to ``joinRoom``: with history on, a ``fanout.joined`` frame with the
    room's (seq, epoch) when the member joined; with history off (None), a plain 200."""
    if position is None:
        return ok()
    frame: dict[str, object] = {"id": new_message_id(), "event": "fanout.joined", "room": room}
    frame.update({"from": None, "seq": position[0], "epoch": position[1]})
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(frame, separators=(",", ":")),
    }


def error_response(status: int, code: str, message: str, **extra: Any) -> Response:
    """A JSON error answer."""
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"error": code, "message": message, **extra}),
    }


def backend_code(error: BaseException) -> str:
    """The AWS error code an error carries, or ""."""
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
    (TooManyRoomsError, 400, "too_many_rooms"),
    (TooManyConnectionsError, 403, "too_many_connections"),
)


def answer_for(error: Exception, where: str) -> Response:
    """The answer for ``error``, raised while handling ``where``; logs what is ours to fix."""
    if isinstance(error, RequestError):
        return error_response(error.status, error.code, str(error))
    if isinstance(error, RateLimitedError):
        retry_after = round(error.retry_after, 3)
        return error_response(429, "rate_limited", str(error), retry_after=retry_after)
    if isinstance(error, PolicyError):
        return error_response(500, "policy_failed", str(error))  # logged where it failed
    if isinstance(error, ConfigError):
        log.error("misconfigured: %s", error)
        return error_response(500, "misconfigured", str(error))
    for kind, status, code in _ANSWERED:
        if isinstance(error, kind):
            return error_response(status, code, str(error))
    if backend_code(error) in _THROTTLED:
        log.warning("backend throttled %s: %s", where, error)
        return error_response(503, "throttled", "the backend is busy; try again")
    log.exception("%s failed", where, exc_info=error)
    return error_response(500, "internal_error", "internal error")


def answers(handler: Callable[[Any], Response]) -> Handler:
    """Turn every error into the answer the client should get; end the invocation."""

    @functools.wraps(handler)
    def wrapper(event: Any, context: Any = None) -> Response:
        with _invocation(handler.__name__, context, connection_id_of(event)):
            answer: Response | None = None
            try:
                answer = handler(event)
            except Exception as error:
                if isinstance(error, ForbiddenError | NotAMemberError):
                    metrics.add("Denied")
                elif isinstance(error, RateLimitedError):
                    metrics.add("RateLimited")
                answer = answer_for(error, handler.__name__)
            finally:
                count_answer(answer)
                finish()
            return answer

    return wrapper


def entry(handler: Callable[[Any, Any], R]) -> Entry[R]:
    """One invocation around an entry point that is not a route: its metrics written once
    (one document) and its log lines' fields, ended (``finish``) however it ends."""

    @functools.wraps(handler)
    def wrapper(event: Any = None, context: Any = None) -> R:
        with _invocation(handler.__name__, context):
            try:
                return handler(event, context)
            finally:
                finish()

    return wrapper


def _invocation(
    source: str, context: Any, connection_id: str | None = None
) -> contextlib.AbstractContextManager[metrics.Invocation | None]:
    # The container's settings once something built its runtime; the environment's before.
    runtime = current_runtime()
    return metrics.invocation(
        source,
        runtime.config if runtime is not None else None,
        request_id=request_id_of(context),
        connection_id=connection_id,
    )


def count_answer(answer: Response | None) -> None:
    """An answer's status in the invocation's metrics: ClientErrors (4xx), Errors (5xx, or
    no answer at all)."""
    status = answer.get("statusCode", 500) if answer is not None else 500
    metrics.add("Errors" if status >= 500 else "ClientErrors", status >= 400)


def finish() -> None:
    """End an invocation: the container's runtime's (``Runtime.finish``: departures, then
    metrics), or, when nothing built one, write the invocation's metrics alone."""
    runtime = current_runtime()
    if runtime is not None:
        runtime.finish()
    else:
        metrics.flush()


def request_id_of(context: Any) -> str | None:
    """The AWS request id of a Lambda context (None without one)."""
    value = getattr(context, "aws_request_id", None)
    return value if isinstance(value, str) and len(value) <= 128 else None


def connection_id_of(event: Any) -> str | None:
    """The connection id of a WebSocket event, if it has a plausible one (for logs and
    metrics' properties; the handler validates it)."""
    context = event.get("requestContext") if isinstance(event, dict) else None
    value = context.get("connectionId") if isinstance(context, dict) else None
    if isinstance(value, str) and 0 < len(value) <= 128 and value.isascii():
        return value
    return None
