"""gsi_query: a room's members from the audience index; everyone from its 16 shards."""

from __future__ import annotations

import functools
from collections.abc import Iterator

from fanout_core import keys
from fanout_core.audience import interleaved
from fanout_core.reads import LIBRARY_PAGE_ITEMS
from fanout_core.store import Page
from fanout_core.strategy import FanoutStrategy


class GsiQuery(FanoutStrategy):
    """Query the audience index: reads only the audience, whatever the table's size."""

    name = "gsi_query"
    # The everyone-shards are read at once, each on a thread, into the same bounded
    # delivery: the first post does not wait for 15 shards, nor the last for their sum.
    concurrent_shards = True
    # Items a concurrent shard read asks for per page unless FANOUT_PAGE_SIZE says otherwise:
    # four 1 MB pages parsed at once doubled a fan-out's peak memory at 100,000.
    shard_page_items = LIBRARY_PAGE_ITEMS

    def audience_pages(self, room: str | None) -> Iterator[Page]:
        """Query pages of the room's index partition, or of every everyone-shard."""
        if room is not None:
            return self.store.room_pages(room, page_size=self.config.page_size)
        if not self.concurrent_shards:
            return self.store.everyone_pages(page_size=self.config.page_size)
        page_size = self.config.page_size or self.shard_page_items
        readers = [
            functools.partial(self.store.shard_pages, shard, page_size=page_size)
            for shard in range(keys.EVERYONE_SHARDS)
        ]
        return interleaved(readers, name="fanout-shard")
