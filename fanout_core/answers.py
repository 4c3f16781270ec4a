"""What a handler answers: 200, or a JSON error for the client's mistake, never a raise.

``answers`` wraps a handler: every error becomes the answer the client should get, an
unexpected one is logged and answered 500, and the invocation ends (``Runtime.finish``:
departures found by 410s are announced) whatever happened.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from typing import Any

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
        try:
            return handler(event)
        except Exception as error:
            return answer_for(error, handler.__name__)
        finally:
            finish()

    return wrapper


def finish() -> None:
    """End an invocation of the container's runtime, if one was built."""
    runtime = current_runtime()
    if runtime is not None:
        runtime.finish()
