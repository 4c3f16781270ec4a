"""The console's event feed: what happened, in order, pushed to every open page."""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import threading
import time
from typing import Any

BACKLOG = 2000  # events a page that opens late is sent first


class ConsoleFeed:
    """Events from any thread, numbered, kept (the last ``backlog``) and pushed to pages."""

    def __init__(self, backlog: int = BACKLOG) -> None:
        self._lock = threading.Lock()
        self._numbers = itertools.count(1)
        self._kept: collections.deque[dict[str, Any]] = collections.deque(maxlen=backlog)
        self._pages: dict[asyncio.Queue[str], asyncio.AbstractEventLoop] = {}
        self.state: dict[str, Any] = {}  # what a new page needs first: config, routes
        self._rows: dict[str, dict[str, Any]] = {}  # the table now, by "pk sk"

    def emit(self, kind: str, **data: Any) -> dict[str, Any]:
        """Record one event and push it to every subscribed page; returns the event."""
        with self._lock:
            event = {"n": next(self._numbers), "t": round(time.time(), 3), "kind": kind, **data}
            if kind == "rows":  # the table now is state; its diffs need not be replayed
                for key in data.get("delete", []):
                    self._rows.pop(key, None)
                self._rows.update({row["key"]: row for row in data.get("upsert", [])})
            else:
                self._kept.append(event)
            text = json.dumps(event, default=str)
            pages = list(self._pages.items())
        for queue, loop in pages:
            if not loop.is_closed():
                loop.call_soon_threadsafe(queue.put_nowait, text)
        return event

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        """The kept events (of ``kind``), oldest first."""
        with self._lock:
            return [e for e in self._kept if kind is None or e["kind"] == kind]

    def rows(self) -> list[dict[str, Any]]:
        """The table's rows as last seen."""
        with self._lock:
            return list(self._rows.values())

    def subscribe(self) -> tuple[asyncio.Queue[str], list[str]]:
        """A queue of new events for the running loop, and what to send first: a ``hello``
        with the state and the table, then the kept events."""
        queue: asyncio.Queue[str] = asyncio.Queue()
        with self._lock:
            self._pages[queue] = asyncio.get_running_loop()
            hello = {"kind": "hello", **self.state, "rows": list(self._rows.values())}
            first = [json.dumps(hello, default=str)]
            first += [json.dumps(e, default=str) for e in self._kept]
        return queue, first

    def unsubscribe(self, queue: asyncio.Queue[str]) -> None:
        """Stop pushing to ``queue``."""
        with self._lock:
            self._pages.pop(queue, None)
