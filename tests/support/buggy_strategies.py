"""Two deliberately broken strategies: the properties must catch both.

- ``FirstPageOnly``: the seed demo's bug. It scans with a filter like ``full_scan`` but
  reads only the first page, so everyone listed after it is silently skipped.
- ``DeletesSenderOnGone``: ``gsi_query`` whose 410 path deletes the sender of the message
  instead of the connection that answered 410 (through the deliverer's gone callback, so it
  holds whichever way the deliverer posts).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator

from fanout_core.outgoing import Outgoing
from fanout_core.result import FanoutResult
from fanout_core.runtime import Runtime
from fanout_core.store import Page
from fanout_core.strategy import FanoutStrategy
from tests.support.strategy_classes import GsiQuery


class FirstPageOnly(FanoutStrategy):
    """A full scan that stops after the first page."""

    name = "first_page_only"

    def audience_pages(self, room: str | None) -> Iterator[Page]:
        """Only the first page of the scan."""
        return itertools.islice(self.store.scan_pages(room, page_size=self.config.page_size), 1)


class DeletesSenderOnGone(GsiQuery):
    """gsi_query whose 410 cleanup deletes the sender."""

    name = "deletes_sender_on_gone"
    sender: str | None = None

    def fanout(self, message: Outgoing) -> FanoutResult:
        """Note the sender (the frame's ``from``) for the cleanup, then fan out as usual."""
        self.sender = json.loads(message.frame.payload)["from"]
        return super().fanout(message)


def install_first_page_only(runtime: Runtime) -> None:
    """Replace the runtime's strategy with ``FirstPageOnly``."""
    runtime.strategy = FirstPageOnly(runtime.store, runtime.deliverer, runtime.config)


def install_deletes_sender_on_gone(runtime: Runtime) -> None:
    """Give the deliverer a 410 callback that deletes the sender, whoever answered 410."""
    strategy = DeletesSenderOnGone(runtime.store, runtime.deliverer, runtime.config)
    store = runtime.store
    runtime.deliverer.on_gone = lambda cid: store.disconnect(strategy.sender or cid)
    runtime.strategy = strategy
