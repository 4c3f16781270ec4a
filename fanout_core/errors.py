"""The library's exceptions: one base class, one subclass per thing a caller can act on."""

from __future__ import annotations

# DynamoDB's answer to a write whose condition did not hold.
CONDITION_FAILED = "ConditionalCheckFailedException"


def condition_failed(error: Exception) -> bool:
    """True if ``error`` (a PynamoDB PutError, UpdateError or DeleteError) is a failed
    condition, not a backend failure."""
    return getattr(error, "cause_response_code", None) == CONDITION_FAILED


class FanoutError(Exception):
    """Base class of every error this library raises on purpose."""


class ConfigError(FanoutError, ValueError):
    """An environment variable holds a value the library cannot use."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")
        self.variable = variable


class InvalidValueError(FanoutError, ValueError):
    """A value from a client or a caller that the library refuses, and why."""

    field = "value"

    def __init__(self, value: str, reason: str) -> None:
        shown = value if len(value) <= 40 else value[:40] + "..."
        super().__init__(f"invalid {self.field} {shown!r}: {reason}")
        self.value = value
        self.reason = reason


class InvalidKeyError(InvalidValueError):
    """A room name, connection id or principal that could not be stored safely."""

    field = "key"


class InvalidRoomNameError(InvalidKeyError):
    """A room name outside the allowed length or characters."""

    field = "room name"


class InvalidConnectionIdError(InvalidKeyError):
    """A connection id outside the allowed length or characters."""

    field = "connection id"


class InvalidPrincipalError(InvalidKeyError):
    """A principal (a user) outside the allowed length or characters."""

    field = "principal"


class InvalidIdempotencyKeyError(InvalidKeyError):
    """An idempotency key (a publish's, or a sendMessage's ``id``) outside 1-64 of A-Z a-z
    0-9 _ -."""

    field = "idempotency key"


class NotConnectedError(FanoutError):
    """The connection has no live row: never connected, disconnected, gone or expired."""

    def __init__(self, connection_id: str) -> None:
        super().__init__(f"connection {connection_id!r} is not connected")
        self.connection_id = connection_id


class UnknownStrategyError(ConfigError):
    """FANOUT_STRATEGY names no registered strategy."""

    def __init__(self, name: str, valid: list[str]) -> None:
        super().__init__("FANOUT_STRATEGY", f"unknown strategy {name!r}; valid: {', '.join(valid)}")
        self.name = name
        self.valid = valid


class InvalidStrategyError(ConfigError):
    """A registered strategy class that cannot serve: no ``name``, another name, or abstract."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__("FANOUT_STRATEGY", f"strategy {name!r} cannot be loaded: {reason}")
        self.name = name
        self.reason = reason


class InvalidEventError(InvalidValueError):
    """An event name outside the allowed characters, or one of the library's own."""

    field = "event name"


class PayloadTooLargeError(FanoutError):
    """A frame over API Gateway's 128 KB message limit: rejected before any post."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"message of {size} bytes is over the {limit}-byte limit")
        self.size = size
        self.limit = limit


class NotAMemberError(FanoutError):
    """A connection sent to a room it is not a member of."""

    def __init__(self, connection_id: str, room: str) -> None:
        super().__init__(f"connection {connection_id!r} is not a member of room {room!r}")
        self.connection_id = connection_id
        self.room = room


class ForbiddenError(FanoutError):
    """The access policy denied the action: answered 403 ``forbidden`` with its reason."""

    def __init__(self, action: str, reason: str) -> None:
        super().__init__(reason)
        self.action = action
        self.reason = reason


class PolicyError(FanoutError):
    """The access policy raised or answered something else than allow or deny: a 500."""


class RateLimitedError(FanoutError):
    """The connection (or its principal) asked over its rate: answered 429 ``rate_limited``
    with ``retry_after``."""

    def __init__(self, connection_id: str, retry_after: float) -> None:
        super().__init__(f"too many requests; retry after {retry_after:.3f} s")
        self.connection_id = connection_id
        self.retry_after = retry_after


class TooManyRoomsError(FanoutError):
    """One more room than ``FANOUT_MAX_ROOMS_PER_CONNECTION``: answered 400 ``too_many_rooms``."""

    def __init__(self, connection_id: str, limit: int) -> None:
        super().__init__(f"a connection may be in at most {limit} rooms")
        self.connection_id = connection_id
        self.limit = limit


class TooManyConnectionsError(FanoutError):
    """One more connection than ``FANOUT_MAX_CONNECTIONS_PER_USER``: answered 403
    ``too_many_connections``."""

    def __init__(self, principal: str, limit: int) -> None:
        super().__init__(f"a user may have at most {limit} connections open")
        self.principal = principal
        self.limit = limit
