"""Two deliberately broken strategies: the properties must catch both.

- ``FirstPageOnly``: the seed demo's bug. It scans with a filter like ``full_scan`` but
  reads only the first page, so everyone listed after it is silently skipped.
- ``DeletesSenderOnGone``: ``gsi_query`` whose 410 path deletes the sender of the message
  instead of the connection that answered 410 (through the store the deliverer cleans up
  with, so it holds whichever way the deliverer posts).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from fanout_core.message import Message
from fanout_core.result import FanoutResult
from fanout_core.runtime import Runtime
from fanout_core.store import ConnectionStore, Page
from fanout_core.strategy import FanoutStrategy
from strategies.gsi_query import GsiQuery


class FirstPageOnly(FanoutStrategy):
    """A full scan that stops after the first page."""

    name = "first_page_only"

    def audience_pages(self, room: str | None) -> Iterator[Page]:
        """Only the first page of the scan."""
        return itertools.islice(self.store.scan_pages(room, page_size=self.config.page_size), 1)


class SenderDeletingStore(ConnectionStore):
    """The deliverer's store: its ``disconnect`` deletes the sender of the current message."""

    sender: str | None = None

    def disconnect(self, connection_id: str) -> int:
        """Delete the sender, whoever answered 410 (the bug)."""
        return super().disconnect(self.sender or connection_id)


class DeletesSenderOnGone(GsiQuery):
    """gsi_query whose deliverer's 410 cleanup deletes the sender."""

    name = "deletes_sender_on_gone"

    def fanout(self, message: Message) -> FanoutResult:
        """Note the sender for the store, then fan out as usual."""
        store = self.deliverer.store
        assert isinstance(store, SenderDeletingStore)
        store.sender = message.sender
        return super().fanout(message)


def install_first_page_only(runtime: Runtime) -> None:
    """Replace the runtime's strategy with ``FirstPageOnly``."""
    runtime.strategy = FirstPageOnly(runtime.store, runtime.deliverer, runtime.config)


def install_deletes_sender_on_gone(runtime: Runtime) -> None:
    """Give the deliverer the sender-deleting store, and the strategy that feeds it."""
    store = runtime.store
    runtime.deliverer.store = SenderDeletingStore(
        store.config, clock=store.clock, models=store.models
    )
    runtime.strategy = DeletesSenderOnGone(runtime.store, runtime.deliverer, runtime.config)
