"""What a client's request costs, and the caps on rooms and connections (docs/access.md).

Every action a client can repeat takes a token: one from its connection's bucket
(``FANOUT_RATE_LIMIT``), then one from its principal's (``FANOUT_USER_RATE_LIMIT``), each
if on. A token is taken last, once nothing else refuses the request: a request refused for
another reason costs none. One the principal's bucket refuses has taken its connection's.
An answer posted to the caller (``history``, ``presence``) takes one token more for each
``ANSWER_BYTES_PER_TOKEN`` it posted past its first, after posting, into debt if need be.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from fanout_core.config import ANSWER_BYTES_PER_TOKEN
from fanout_core.errors import TooManyConnectionsError, TooManyRoomsError

if TYPE_CHECKING:
    from fanout_core.events import WebSocketRequest
    from fanout_core.runtime import Runtime

__all__ = ["ANSWER_BYTES_PER_TOKEN", "admit", "charge_answer", "check_rooms", "take"]


def take(runtime: Runtime, request: WebSocketRequest) -> None:
    """One token of the connection's bucket, then of its principal's; RateLimitedError if
    one is empty."""
    if runtime.limiter is not None:
        runtime.limiter.take(request.connection_id)
    if runtime.user_limiter is not None and request.principal is not None:
        runtime.user_limiter.take(request.principal)


def charge_answer(runtime: Runtime, request: WebSocketRequest, posted_bytes: int) -> None:
    """What an answer posted past the token it took, in tokens of ``ANSWER_BYTES_PER_TOKEN``."""
    more = math.ceil(posted_bytes / ANSWER_BYTES_PER_TOKEN) - 1
    if more <= 0:
        return
    if runtime.limiter is not None:
        runtime.limiter.charge(request.connection_id, more)
    if runtime.user_limiter is not None and request.principal is not None:
        runtime.user_limiter.charge(request.principal, more)


def check_rooms(runtime: Runtime, request: WebSocketRequest, rooms: Sequence[str]) -> None:
    """TooManyRoomsError if a ``$connect`` asks for more rooms than a connection may be in."""
    limit = runtime.config.max_rooms_per_connection
    if len(rooms) > limit:
        raise TooManyRoomsError(request.connection_id, limit)


def admit(runtime: Runtime, request: WebSocketRequest) -> None:
    """A ``$connect`` of a principal: TooManyConnectionsError if it has as many live
    connections as ``FANOUT_MAX_CONNECTIONS_PER_USER``, else its bucket's token."""
    if request.principal is None:
        return
    limit = runtime.config.max_connections_per_user
    if limit is not None and runtime.store.live_connections(request.principal, up_to=limit) >= (
        limit
    ):
        raise TooManyConnectionsError(request.principal, limit)
    if runtime.user_limiter is not None:
        runtime.user_limiter.take(request.principal)
