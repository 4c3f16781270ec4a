"""gsi_query: a room's members from the audience index; everyone from its 16 shards."""

from __future__ import annotations

from collections.abc import Iterator

from fanout_core.store import Page
from fanout_core.strategy import FanoutStrategy


class GsiQuery(FanoutStrategy):
    """Query the audience index: reads only the audience, whatever the table's size."""

    name = "gsi_query"

    def audience_pages(self, room: str | None) -> Iterator[Page]:
        """Query pages of the room's index partition, or of every everyone-shard."""
        if room is None:
            return self.store.everyone_pages(page_size=self.config.page_size)
        return self.store.room_pages(room, page_size=self.config.page_size)
