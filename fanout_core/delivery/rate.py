"""How fast a Deliverer posts: a window of posts in flight that backs off on 429s, and a cap.

API Gateway allows about 10,000 requests a second per account and region, callback posts
included, and answers 429 past it. Retrying each throttled post alone keeps the pressure
on; ``AdaptiveWindow`` lowers the pressure instead, as TCP's congestion control does:
additive increase (the window grows by one per window of posts that succeed), multiplicative
decrease (a 429 halves it, once per round of posts in flight). Posts per second follow the
window (window / latency). ``TokenBucket`` caps the rate outright
(``FANOUT_MAX_POSTS_PER_SECOND``), and answers 429s in the local Management API's account
mode.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Imported where used: asyncio costs cold start, and only a fan-out needs it.
    import asyncio

Clock = Callable[[], float]


class TokenBucket:
    """``rate`` tokens a second, ``burst`` at most saved up; not thread-safe."""

    def __init__(self, rate: float, burst: float | None = None, clock: Clock = time.monotonic):
        if rate <= 0:
            raise ValueError(f"rate must be above 0, got {rate}")
        self.rate = rate
        self.burst = max(1.0, burst if burst is not None else rate / 10)
        self.clock = clock
        self.tokens = self.burst
        self.at = clock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now

    def take(self) -> bool:
        """Take a token if there is one."""
        self._refill()
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def wait(self) -> float:
        """Take a token now, or reserve the next one: the seconds to wait before using it."""
        self._refill()
        self.tokens -= 1
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


class AdaptiveWindow:
    """Posts in flight, at most ``window``; AIMD on 429s. Used from one event loop only."""

    def __init__(self, ceiling: int, *, adaptive: bool = True, max_rate: float | None = None):
        self.ceiling = ceiling
        self.adaptive = adaptive
        self.window = float(ceiling)
        self.in_flight = 0
        self.decreases = 0  # times a 429 halved the window
        self._round = 0  # posts started; a 429 of a post started before the last cut is old
        self._cut_at = -1
        self._bucket = TokenBucket(max_rate) if max_rate else None
        self._waiters: list[asyncio.Future[None]] = []

    def try_acquire(self) -> int:
        """The post's round if it may start now, without waiting; else 0: ``acquire()``."""
        # window >= 1, and for an integer in_flight, in_flight + 1 <= window is exactly
        # in_flight < floor(window): acquire()'s test without the floor.
        if self.in_flight + 1 <= self.window and self._bucket is None and not self._waiters:
            self.in_flight += 1
            self._round += 1
            return self._round
        return 0

    async def acquire(self) -> int:
        """Wait for room in the window (and a token of the cap); the post's round."""
        import asyncio

        while self.in_flight >= max(1, math.floor(self.window)):
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter
        self.in_flight += 1
        if self._bucket is not None:
            delay = self._bucket.wait()
            if delay > 0:
                await asyncio.sleep(delay)
        self._round += 1
        return self._round

    def release(self, started: int, *, throttled: bool) -> None:
        """One post ended: grow the window, or (a 429) halve it once per round."""
        self.in_flight -= 1
        if not self.adaptive or (not throttled and self.window == self.ceiling):
            pass  # at the ceiling, a success changes nothing: the common case, kept cheap
        elif throttled:
            if started > self._cut_at:  # older posts' 429s answer the load before the cut
                self.window = max(1.0, self.window / 2)
                self._cut_at = self._round
                self.decreases += 1
        else:
            self.window = min(float(self.ceiling), self.window + 1 / self.window)
        while self._waiters and self.in_flight < max(1, math.floor(self.window)):
            waiter = self._waiters.pop(0)
            if not waiter.done():
                waiter.set_result(None)
                break
