"""The library's handlers with a ``history`` answer slower than the client's refresh: the
JavaScript client's tests scale ``maxConnectionAge`` down to a second
(tests/test_client_js.py); a resume answered after the next refresh is due must still come,
and sends made on the old connection must still be handled."""

from __future__ import annotations

import time
from typing import Any

from fanout_core import handlers
from fanout_core.answers import Handler, Response

SECONDS = 1.3  # longer than the tests' maxConnectionAge of 1 s


def history(event: Any, context: Any = None) -> Response:
    time.sleep(SECONDS)  # as a handler stuck behind throttled reads would be
    return handlers.history(event, context)


ROUTES: dict[str, Handler] = {**handlers.ROUTES, "history": history}
