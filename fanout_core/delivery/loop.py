"""An asyncio event loop on a thread of its own: built on first use, kept for the container."""

from __future__ import annotations

import threading
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # Imported where used: asyncio costs cold start, and only a fan-out needs it.
    import asyncio


class LoopThread:
    """A loop running forever on a daemon thread named ``name``, until ``stop()``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def current(self) -> asyncio.AbstractEventLoop | None:
        """The running loop, or None: nothing is started."""
        return self._loop

    def get(self) -> asyncio.AbstractEventLoop:
        """The running loop, started now if it is not."""
        if self._loop is None:
            with self._lock:
                if self._loop is None:
                    import asyncio

                    loop = asyncio.new_event_loop()
                    thread = threading.Thread(target=loop.run_forever, name=self.name, daemon=True)
                    thread.start()
                    self._loop, self._thread = loop, thread
        return self._loop

    def stop(self, last: Callable[[], Coroutine[Any, Any, None]] | None = None) -> None:
        """Run ``last()`` on the loop, then stop it and its thread; ``get()`` starts anew."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        import asyncio

        if last is not None:
            asyncio.run_coroutine_threadsafe(last(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
