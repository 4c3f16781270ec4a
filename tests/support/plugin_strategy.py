"""A strategy from outside the library, registered through the entry-point group in a test."""

from __future__ import annotations

from collections.abc import Iterator

from fanout_core.store import Page
from fanout_core.strategy import FanoutStrategy


class ShardByShard(FanoutStrategy):
    """Everyone from the index (like gsi_query); rooms by scanning, to differ visibly."""

    name = "shard_by_shard"

    def audience_pages(self, room: str | None) -> Iterator[Page]:
        if room is None:
            return self.store.everyone_pages(page_size=1)
        return self.store.scan_pages(room, page_size=1)


class Misnamed(ShardByShard):
    """Registered under a name it does not carry."""

    name = "shard_by_shard_v2"


class Nameless(FanoutStrategy):
    """Forgot its ``name``."""

    def audience_pages(self, room: str | None) -> Iterator[Page]:
        return self.store.everyone_pages()


class NotAStrategy:
    """Registered by mistake."""
