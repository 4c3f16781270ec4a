"""A clock tests move by hand, so expiry needs no sleeping."""

from __future__ import annotations

import time


class FakeClock:
    """Callable like ``time.time``; starts at the real time and moves only when told."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += seconds
