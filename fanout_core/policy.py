"""Who may do what: the access request, the policy hook, and the built-in policies.

A policy is a callable that receives one ``AccessRequest`` and answers a ``Decision``
(``allow()`` or ``deny(reason)``). The handlers ask it before anything is written or
posted. A policy that raises, or answers anything but a Decision, fails closed: the
request is refused with 500 and nothing changes. Identity comes only from the authorizer
(``requestContext.authorizer``), never from a message body.

``FANOUT_POLICY`` names a built-in (``open``, ``authenticated``, ``owner_rooms``) or
``package.module:function``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from fanout_core import keys
from fanout_core.config import load_hook
from fanout_core.errors import ConfigError, ForbiddenError, InvalidKeyError, PolicyError

log = logging.getLogger(__name__)

Action = Literal["connect", "join", "send", "presence", "history"]
ACTIONS: tuple[Action, ...] = ("connect", "join", "send", "presence", "history")
ContextValue = str | int | float | bool


@dataclass(frozen=True)
class AccessRequest:
    """What a connection asks to do.

    ``room`` is the room it names, or None (a send to everyone, a bare connect).
    ``is_member`` says whether the connection is a live member of ``room``; it is read only
    for ``presence`` and ``history`` (None otherwise).
    """

    action: Action
    connection_id: str
    principal: str | None = None
    context: Mapping[str, ContextValue] = field(default_factory=dict)
    room: str | None = None
    is_member: bool | None = None


@dataclass(frozen=True)
class Decision:
    """A policy's answer: allowed, or denied with the reason the client is told."""

    allowed: bool
    reason: str = ""


def allow() -> Decision:
    """Let the request through."""
    return Decision(True)


def deny(reason: str) -> Decision:
    """Refuse the request (403 ``forbidden``) with ``reason``."""
    return Decision(False, reason)


Policy = Callable[[AccessRequest], Decision]


# -- the built-in policies: each a few lines to copy as the start of your own ------------


def open_policy(request: AccessRequest) -> Decision:
    """Anyone may connect, join, send; members may ask a room's presence and history."""
    if request.action in ("presence", "history") and not request.is_member:
        return deny(f"only members of {request.room!r} may ask its {request.action}")
    return allow()


def authenticated(request: AccessRequest) -> Decision:
    """As ``open``, for connections whose authorizer gave a principal."""
    if request.principal is None:
        return deny(f"{request.action} needs a signed-in connection (a principal)")
    return open_policy(request)


def claimed_rooms(request: AccessRequest) -> set[str]:
    """The rooms the authorizer's ``rooms`` claim lists, valid names only, and the
    connection's own ``user:<principal>``.

    The claim is comma-separated (``"lobby,ops"``), or a JSON array of names
    (``'["a,b", "lobby"]'``) for names that hold a comma: an authorizer's context values
    are strings, numbers and booleans only.
    """
    claim = str(request.context.get("rooms", ""))
    names: list[object] = list(claim.split(","))
    if claim.lstrip().startswith("["):
        try:
            parsed = json.loads(claim)
        except ValueError:
            parsed = []  # a broken array grants nothing
        names = parsed if isinstance(parsed, list) else []
    rooms = set()
    for name in names:
        try:
            rooms.add(keys.validate_room(name.strip() if isinstance(name, str) else name))
        except InvalidKeyError:
            continue  # an invalid name in a claim grants nothing
    if request.principal is not None:
        rooms.add(f"user:{request.principal}")
    return rooms


def owner_rooms(request: AccessRequest) -> Decision:
    """Join, send to, and ask about only the rooms the authorizer lists; never everyone."""
    if request.action == "connect" and request.room is None:
        return allow()
    if request.room is None:
        return deny(f"{request.action} is not allowed for everyone")
    if request.room not in claimed_rooms(request):
        reason = f"{request.action} is not allowed for room {request.room!r}"
        return deny(f"{reason}: it is not one of this connection's rooms")
    return open_policy(request)


BUILTIN_POLICIES: dict[str, Policy] = {
    "open": open_policy,
    "authenticated": authenticated,
    "owner_rooms": owner_rooms,
}


def load_policy(spec: str) -> Policy:
    """A built-in policy by name, or ``package.module:function``; ConfigError if neither."""
    if spec in BUILTIN_POLICIES:
        return BUILTIN_POLICIES[spec]
    if ":" not in spec:
        valid = ", ".join(BUILTIN_POLICIES)
        raise ConfigError("FANOUT_POLICY", f"{spec!r}: name one of {valid} or MODULE:FUNCTION")
    policy: Policy = load_hook("FANOUT_POLICY", spec)
    return policy


def enforce(policy: Policy, request: AccessRequest) -> None:
    """Ask ``policy``; ForbiddenError if it denies, PolicyError if it fails (fail closed)."""
    try:
        decision = policy(request)
    except BaseException as error:  # SystemExit and KeyboardInterrupt fail closed too
        log.exception("the access policy raised on %s", request.action)
        raise PolicyError(f"the access policy failed: {type(error).__name__}") from error
    if not isinstance(decision, Decision) or not isinstance(decision.allowed, bool):
        log.error("the access policy answered %r, not a Decision", decision)
        raise PolicyError("the access policy answered neither allow nor deny")
    if not decision.allowed:
        raise ForbiddenError(request.action, decision.reason or "denied by the access policy")
