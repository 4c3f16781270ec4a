"""The library's handlers, with API Gateway's best-effort ``$disconnect`` made to fail.

``benchmarks.load`` serves these: a socket that dies without a close frame (1006) gets no
``$disconnect``, as a phone that loses its network may not on AWS, so its rows stay until a
post to it answers 410 and the fan-out deletes them.
"""

from __future__ import annotations

from typing import Any

from fanout_core import handlers


def lossy_disconnect(event: Any, context: Any = None) -> handlers.Response:
    """``$disconnect``, lost for an abnormal closure."""
    if event.get("requestContext", {}).get("disconnectStatusCode") == 1006:
        return handlers.ok()
    return handlers.disconnect(event, context)


ROUTES: dict[str, handlers.Handler] = {**handlers.ROUTES, "$disconnect": lossy_disconnect}
