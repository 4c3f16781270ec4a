"""full_scan: the seed demo's approach, a table scan with a filter, but reading every page.

The demo read only the first 1 MB scan page and silently skipped everyone after it.
"""

from __future__ import annotations

from collections.abc import Iterator

from fanout_core.store import Page
from fanout_core.strategy import FanoutStrategy


class FullScan(FanoutStrategy):
    """Scan the whole table, keep the audience's live rows."""

    name = "full_scan"

    def audience_pages(self, room: str | None) -> Iterator[Page]:
        """Every scan page, to the last LastEvaluatedKey."""
        return self.store.scan_pages(room, page_size=self.config.page_size)

    def user_pages(self, principal: str) -> Iterator[Page]:
        """The whole table too: every connection row, filtered on its principal."""
        return self.store.scan_pages(None, principal=principal, page_size=self.config.page_size)
