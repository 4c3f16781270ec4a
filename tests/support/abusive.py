"""A policy and an authorizer that misbehave, for `fanout serve --policy/--authorizer`.

``policy`` is ``owner_rooms``, except that asking about room ``exit`` raises ``SystemExit``
and room ``interrupt`` raises ``KeyboardInterrupt``. ``authorizer`` allows ``?token=NAME``
as principal NAME, with a context that also names a ``principalId`` (``admin``): the
principal must win. ``ROUTES`` are the library's, plus routes ``exit`` and ``interrupt``
whose handlers raise ``SystemExit`` and ``KeyboardInterrupt``.
"""

from __future__ import annotations

from typing import Any

from fanout_core import handlers
from fanout_core.policy import AccessRequest, Decision, owner_rooms
from tests.support.authorizers import policy as allow_policy

FORGED_PRINCIPAL = "admin"


def policy(request: AccessRequest) -> Decision:
    """owner_rooms, but a policy's bug of the worst kind on two rooms."""
    if request.room == "exit":
        raise SystemExit(3)
    if request.room == "interrupt":
        raise KeyboardInterrupt
    return owner_rooms(request)


def authorizer(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Allow ``?token=NAME`` as NAME; the context claims another principal."""
    token = (event.get("queryStringParameters") or {}).get("token")
    if not token:
        raise Exception("Unauthorized")
    return allow_policy(
        token, "Allow", event["methodArn"], principalId=FORGED_PRINCIPAL, rooms="lobby,exit"
    )


def exits(event: Any, context: Any) -> Any:
    raise SystemExit(3)


def interrupts(event: Any, context: Any) -> Any:
    raise KeyboardInterrupt


ROUTES = {**handlers.ROUTES, "exit": exits, "interrupt": interrupts}
