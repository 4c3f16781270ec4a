"""$connect authorizers for `fanout serve --authorizer`, shaped as API Gateway calls them.

``by_token`` reads ``?token=``: ``alice`` / ``bob`` are allowed with a principal and a context,
``deny`` is answered a Deny policy, ``nobody`` raises ``Unauthorized``, ``nested`` answers a
context API Gateway would refuse. ``any_token`` allows any token, from the query string or
the subprotocol header, as its principal. ``echo_handlers`` answers every message with the
``requestContext.authorizer`` it was given, so a test can see what reached later events.
"""

from __future__ import annotations

import json
from typing import Any

from fanout_core import handlers

CALLS: list[dict[str, Any]] = []


def policy(principal: str, effect: str, resource: str, **context: Any) -> dict[str, Any]:
    return {
        "principalId": principal,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}],
        },
        "context": context,
    }


def by_token(event: dict[str, Any], context: Any) -> dict[str, Any]:
    CALLS.append(event)
    token = (event.get("queryStringParameters") or {}).get("token")
    arn = event["methodArn"]
    if token in ("alice", "bob"):
        return policy(token, "Allow", arn, rooms="lobby,ops", tier=2, admin=token == "alice")
    if token == "deny":
        return policy("mallory", "Deny", arn)
    if token == "nested":
        return policy("eve", "Allow", arn, claims={"sub": "x"})
    raise Exception("Unauthorized")  # API Gateway answers 401


def any_token(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Allows any token (its principal), from ``?token=`` or the subprotocols ``fanout, T``."""
    offered = (event.get("headers") or {}).get("Sec-WebSocket-Protocol", "")
    protocols = [part.strip() for part in offered.split(",") if part.strip()]
    token = (event.get("queryStringParameters") or {}).get("token")
    if token is None and len(protocols) == 2 and protocols[0] == "fanout":
        token = protocols[1]
    if not token:
        raise Exception("Unauthorized")
    return policy(token, "Allow", event["methodArn"])


def echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A message handler that answers with what the authorizer put into the event."""
    authorizer = event["requestContext"].get("authorizer")
    return {"statusCode": 200, "body": json.dumps({"authorizer": authorizer})}


ROUTES = {**handlers.ROUTES, "$default": echo}
