"""parallel_scan: the full scan split into FANOUT_SEGMENTS segments read concurrently."""

from __future__ import annotations

import functools
from collections.abc import Iterator

from fanout_core.audience import interleaved
from fanout_core.store import Page
from fanout_core.strategy import FanoutStrategy


class ParallelScan(FanoutStrategy):
    """One reader thread per segment, each paging its segment to the end."""

    name = "parallel_scan"

    def audience_pages(self, room: str | None) -> Iterator[Page]:
        """Pages of all segments, in the order they arrive."""
        return self._scan(room, None)

    def user_pages(self, principal: str) -> Iterator[Page]:
        """The parallel scan, filtered on the connections' principal."""
        return self._scan(None, principal)

    def _scan(self, room: str | None, principal: str | None) -> Iterator[Page]:
        segments = self.config.segments
        if segments == 1:
            return self.store.scan_pages(room, principal=principal, page_size=self.config.page_size)
        readers = [
            functools.partial(
                self.store.scan_pages,
                room,
                principal=principal,
                segment=segment,
                total_segments=segments,
                page_size=self.config.page_size,
            )
            for segment in range(segments)
        ]
        return interleaved(readers, name="fanout-scan")
