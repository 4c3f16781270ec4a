"""One retry policy for every retry loop in the library: capped exponential backoff, full jitter."""

from __future__ import annotations

import inspect
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

# A sleep as the caller runs it: ``time.sleep`` on a thread, ``asyncio.sleep`` on a loop, or a
# test's own. An async one is awaited; a plain one is called as it is, also from a loop.
Sleep = Callable[[float], Awaitable[None] | None]
Pending = TypeVar("Pending")


@dataclass(frozen=True)
class Backoff:
    """``attempts`` tries in all, waiting a random time up to ``min(cap, base * 2**n)`` between.

    "Full jitter", as in https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/:
    the random wait spreads retries of many clients throttled at once, where a fixed one
    would bring them back together.
    """

    attempts: int = 5
    base: float = 0.05
    cap: float = 2.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {self.attempts}")
        if self.base < 0 or self.cap < 0:
            raise ValueError("base and cap must not be negative")

    def delay(self, retry: int) -> float:
        """The wait before retry number ``retry`` (1 for the first retry)."""
        return random.uniform(0, min(self.cap, self.base * 2 ** (retry - 1)))

    def delays(self) -> Iterator[float]:
        """The wait before each retry: ``attempts - 1`` of them."""
        for retry in range(1, self.attempts):
            yield self.delay(retry)

    def until_done(
        self,
        step: Callable[[Pending], Pending],
        pending: Pending,
        *,
        gave_up: Callable[[Pending], Exception],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Call ``step`` on what is pending, then on what it leaves, waiting between calls.

        For batch calls that do part of their work under load (SQS entries, DynamoDB keys):
        raises ``gave_up(left)`` when ``attempts`` calls left something undone.
        """
        delays = self.delays()
        while pending:
            pending = step(pending)
            if pending:
                delay = next(delays, None)
                if delay is None:
                    raise gave_up(pending)
                sleep(delay)


async def pause(sleep: Sleep, seconds: float) -> None:
    """Run ``sleep`` from a coroutine, awaiting it if it is async."""
    waited = sleep(seconds)
    if inspect.isawaitable(waited):
        await waited
