"""Who a fan-out posts to: the audience, its targets, and the pages they come in."""

from __future__ import annotations

import contextlib
import contextvars
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from fanout_core import keys


@dataclass(frozen=True, slots=True)
class Target:
    """A connection a message is posted to."""

    connection_id: str
    endpoint: str


@dataclass(frozen=True, slots=True)
class Page:
    """One DynamoDB response page of an audience, already stripped of expired rows."""

    targets: tuple[Target, ...]
    scanned: int  # items DynamoDB read (ScannedCount) for this page, before the filter
    read_units: float | None  # ConsumedCapacity as the backend reported it


def targets_of(pages: Iterable[Page]) -> Iterator[Target]:
    """Every target of every page, in order."""
    for page in pages:
        yield from page.targets


@dataclass(frozen=True)
class Audience:
    """Who a message goes to: a room, a principal's connections, chosen connections, or everyone.

    At most one of ``room``, ``user`` and ``connections``; none means everyone. ``exclude``
    takes connections out of any of them.
    """

    room: str | None = None
    user: str | None = None
    connections: tuple[str, ...] | None = None
    exclude: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        chosen = [self.room is not None, self.user is not None, self.connections is not None]
        if sum(chosen) > 1:
            raise ValueError("an audience is a room, a user or connections: give one of them")
        if self.room is not None:
            keys.validate_room(self.room)
        if self.user is not None:
            keys.validate_principal(self.user)
        if self.connections is not None:
            if isinstance(self.connections, str) or not self.connections:
                raise ValueError("connections must be a non-empty list of connection ids")
            for connection_id in self.connections:
                keys.validate_connection_id(connection_id)
        for connection_id in self.exclude:
            keys.validate_connection_id(connection_id)

    @property
    def label(self) -> str:
        """What the audience is, for a result or a log line."""
        if self.room is not None:
            return f"room:{self.room}"
        if self.user is not None:
            return f"user:{self.user}"
        if self.connections is not None:
            return f"connections:{len(self.connections)}"
        return "everyone"


def without(pages: Iterable[Page], exclude: frozenset[str]) -> Iterator[Page]:
    """``pages`` minus the targets in ``exclude`` (each page's counts as read)."""
    for page in pages:
        targets = tuple(t for t in page.targets if t.connection_id not in exclude)
        yield (
            page
            if len(targets) == len(page.targets)
            else Page(targets, page.scanned, page.read_units)
        )


_DONE = object()


def interleaved(
    readers: Sequence[Callable[[], Iterable[Page]]], *, name: str, parallel: int = 4
) -> Iterator[Page]:
    """The pages of every reader, each read on a thread of its own, in the order they come.

    Bounded: at most ``parallel`` readers fetch or hold a page the consumer (delivery) has
    not taken, and at most ``parallel`` pages wait for it, however many readers and however
    large the audience. A 1 MB page is ~10 MB while botocore parses it: 16 at once made a
    fan-out to 100,000 peak 178 MB above its start; a few readers already read far faster
    than one invocation posts. A reader's error is raised here.
    """
    if len(readers) == 1:
        yield from readers[0]()
        return
    pages: queue.Queue[object] = queue.Queue(maxsize=parallel)
    slots = threading.Semaphore(parallel)
    stop = threading.Event()

    def read(reader: Callable[[], Iterable[Page]]) -> None:
        try:
            iterator = iter(reader())
            while not stop.is_set():
                with slots:
                    page = next(iterator, None)
                    if page is None:
                        return
                    while not stop.is_set():
                        try:
                            pages.put(page, timeout=0.1)
                            break
                        except queue.Full:
                            continue
        except BaseException as error:  # handed to the consumer, re-raised there
            pages.put(error)
        finally:
            pages.put(_DONE)

    threads = [
        # Each in the invocation's context (a copy each: a context runs in one thread at
        # a time), so that what it reads counts in the invocation's metrics.
        threading.Thread(
            target=contextvars.copy_context().run,
            args=(read, reader),
            name=f"{name}-{n}",
            daemon=True,
        )
        for n, reader in enumerate(readers)
    ]
    for thread in threads:
        thread.start()
    running = len(threads)
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
        while any(thread.is_alive() for thread in threads):
            with contextlib.suppress(queue.Empty):
                pages.get(timeout=0.05)
