"""The library's handlers with a ``$connect`` that returns late, after its rows are written:
as under load, where the gateway learns of the answer (and opens the connection to posts)
a while after the handler wrote the connection's rows."""

from __future__ import annotations

import time
from typing import Any

from fanout_core import handlers
from fanout_core.answers import Handler, Response

SECONDS = 0.4  # several of the tests' 50 ms sends reach the room meanwhile


def connect(event: Any, context: Any = None) -> Response:
    answer = handlers.connect(event, context)
    time.sleep(SECONDS)
    return answer


ROUTES: dict[str, Handler] = {**handlers.ROUTES, "$connect": connect}
