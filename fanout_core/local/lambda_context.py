"""What a local invocation passes a Lambda handler besides its event, and what API Gateway
answers for one that raised."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from typing import Any


class LambdaContext:
    """The parts of Lambda's context object handlers commonly read."""

    def __init__(self, function_name: str, timeout_seconds: float = 30.0) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.aws_request_id = str(uuid.uuid4())
        self.memory_limit_in_mb = 128
        self.invoked_function_arn = (
            f"arn:aws:lambda:us-east-1:000000000000:function:{function_name}"
        )
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the invocation would time out."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def failed_invocation(event: Mapping[str, Any]) -> dict[str, Any]:
    """What API Gateway answers for an invocation that raised: the generic 502 body, with the
    ids it adds on a WebSocket route. The error's text stays in the log, never on the wire."""
    context = event.get("requestContext") or {}
    body = {
        "message": "Internal server error",
        "connectionId": context.get("connectionId"),
        "requestId": context.get("requestId"),
    }
    return {"statusCode": 502, "body": json.dumps(body)}
