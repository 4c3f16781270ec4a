"""parallel_scan: the full scan split into FANOUT_SEGMENTS segments read concurrently."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator

from fanout_core.store import Page
from fanout_core.strategy import FanoutStrategy

_DONE = object()


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
            yield from self.store.scan_pages(
                room, principal=principal, page_size=self.config.page_size
            )
            return
        # Bounded: a reader waits while delivery is behind, so memory stays flat.
        pages: queue.Queue[object] = queue.Queue(maxsize=2 * segments)
        stop = threading.Event()

        def read(segment: int) -> None:
            try:
                for page in self.store.scan_pages(
                    room,
                    principal=principal,
                    segment=segment,
                    total_segments=segments,
                    page_size=self.config.page_size,
                ):
                    while not stop.is_set():
                        try:
                            pages.put(page, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
            except BaseException as error:  # handed to the consumer, re-raised there
                pages.put(error)
            finally:
                pages.put(_DONE)

        readers = [
            threading.Thread(target=read, args=(s,), name=f"fanout-scan-{s}", daemon=True)
            for s in range(segments)
        ]
        for reader in readers:
            reader.start()
        running = segments
        try:
            while running:
                item = pages.get()
                if item is _DONE:
                    running -= 1
                elif isinstance(item, BaseException):
                    raise item
                else:
                    assert isinstance(item, Page)
                    yield item
        finally:
            stop.set()
            # Drain so a reader blocked on a full queue can see `stop` and end.
            while any(reader.is_alive() for reader in readers):
                with contextlib.suppress(queue.Empty):
                    pages.get(timeout=0.05)
