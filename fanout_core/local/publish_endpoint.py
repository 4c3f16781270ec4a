"""``fanout serve``'s ``POST /publish``: a Lambda Function URL in front of ``publish_http``.

Served on the Management API's port. With credentials (access key id to secret key), a
request must be signed with SigV4 by one of them, for the service ``lambda`` (a Function URL
with ``AuthType: AWS_IAM``) or ``execute-api`` (API Gateway with IAM auth), as AWS checks it;
unsigned, tampered or expired: 403. Without, it takes any request, as a local tool.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from fanout_core.local.lambda_context import LambdaContext
from fanout_core.local.management_api import SideRoute, check_signature

PATH = "/publish"
SERVICES = ("lambda", "execute-api")


def function_url_event(method: str, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """The event a Function URL passes its function (payload format 2.0)."""
    try:
        text, encoded = body.decode(), False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode(), True
    now = time.time()
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": PATH,
        "rawQueryString": "",
        "headers": dict(headers),
        "requestContext": {
            "http": {"method": method, "path": PATH, "protocol": "HTTP/1.1"},
            "requestId": secrets.token_hex(8),
            "routeKey": "$default",
            "stage": "$default",
            "time": datetime.fromtimestamp(now, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now * 1000),
        },
        "body": text,
        "isBase64Encoded": encoded,
    }


def publish_route(
    handler: Callable[[Any, Any], Any], credentials: Mapping[str, str] | None = None
) -> SideRoute:
    """The side route answering ``POST /publish`` with ``handler`` (``publish_http``)."""

    async def answer(
        method: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, bytes, dict[str, str]]:
        if credentials is not None:
            denied = check_signature(
                credentials, method, PATH, headers, body, time.time(), SERVICES
            )
            if denied is not None:
                return denied.status, denied.body, denied.headers
        event = function_url_event(method, headers, body)
        response = await asyncio.to_thread(handler, event, LambdaContext("publish_http"))
        if not isinstance(response, dict):  # a Function URL answers a bare value as JSON
            return 200, json.dumps(response).encode(), {"Content-Type": "application/json"}
        head = {str(k): str(v) for k, v in (response.get("headers") or {}).items()}
        return int(response.get("statusCode", 200)), str(response.get("body", "")).encode(), head

    return answer
