"""Concurrent partition reads: every page once, a bounded number in memory, errors raised."""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Iterator

import pytest

from fanout_core.audience import Page, Target, interleaved

ENDPOINT = "https://abc123.execute-api.us-east-1.amazonaws.com/prod"


class Pages:
    """Readers whose pages count themselves: fetched and not yet taken by the consumer."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.alive = 0
        self.most = 0

    def reader(self, shard: int, count: int) -> Callable[[], Iterator[Page]]:
        def read() -> Iterator[Page]:
            for n in range(count):
                with self.lock:
                    self.alive += 1
                    self.most = max(self.most, self.alive)
                yield Page((Target(f"s{shard}-{n}", ENDPOINT),), 1, None)

        return read

    def taken(self) -> None:
        with self.lock:
            self.alive -= 1


def test_every_page_once_with_few_in_memory_however_many_readers() -> None:
    pages = Pages()
    seen: list[str] = []
    readers = [pages.reader(shard, 50) for shard in range(16)]
    for page in interleaved(readers, name="test", parallel=4):
        seen.append(page.targets[0].connection_id)
        pages.taken()
    assert sorted(seen) == sorted(f"s{s}-{n}" for s in range(16) for n in range(50))
    # 4 readers hold a page each, 4 wait in the queue, and one is being handed over.
    assert pages.most <= 2 * 4 + 1, pages.most


def test_a_reader_error_is_raised_to_the_consumer() -> None:
    def broken() -> Iterator[Page]:
        yield Page((), 0, None)
        raise RuntimeError("throttled")

    with pytest.raises(RuntimeError, match="throttled"):
        for _ in interleaved([Pages().reader(0, 1000), broken], name="test"):
            pass


def test_a_consumer_that_stops_early_leaves_no_reader_running() -> None:
    before = threading.active_count()
    pages = interleaved([Pages().reader(s, 1000) for s in range(16)], name="test")
    assert isinstance(pages, Generator)
    next(pages)
    pages.close()
    assert threading.active_count() == before
