"""Deliverer: post one frame to every target at bounded concurrency, retry 429/5xx, report 410s."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from fanout_core.audience import Page, Target, targets_of
from fanout_core.delivery.backoff import Backoff, Sleep, pause
from fanout_core.delivery.loop import LoopThread
from fanout_core.delivery.posting import Poster, PostOutcome, PostStatus, async_poster
from fanout_core.delivery.rate import AdaptiveWindow
from fanout_core.result import Failure, FanoutResult, counted

if TYPE_CHECKING:
    # Imported where used: asyncio costs cold start, and only a fan-out needs it.
    import asyncio

# Called with a connection id that answered 410, on a thread of its own (it may block):
# the store's ``disconnect``, as the runtime wires it. What it raises is counted as a
# retryable failure of that target; the next 410 or the TTL deletes the row later.
GoneCallback = Callable[[str], object]
_Post = Callable[[str, str, bytes], Awaitable[PostOutcome]]


def _ignore_gone(connection_id: str) -> None:
    """The default: nothing to clean up (a Deliverer used without a store)."""


class Deliverer:
    """Posts frames with at most ``concurrency`` posts in flight, from one event-loop thread.

    Pages are consumed as they arrive and a page is read only when a slot is free, so
    memory holds about ``concurrency`` targets however large the audience. An
    ``AsyncPoster`` posts on the loop itself; any other ``Poster`` posts from a pool of
    ``concurrency`` threads the loop hands posts to. Either way, one coroutine per target
    retries, backs off, reports a 410 to ``on_gone`` and counts. Posts start within an
    ``AdaptiveWindow``: a 429 halves the posts in flight (``adaptive``), and
    ``max_posts_per_second`` caps their rate.
    """

    def __init__(
        self,
        poster: Poster,
        *,
        on_gone: GoneCallback = _ignore_gone,
        concurrency: int = 32,
        backoff: Backoff | None = None,
        sleep: Sleep | None = None,
        adaptive: bool = True,
        max_posts_per_second: float | None = None,
    ) -> None:
        self.poster = poster
        self.adaptive = adaptive
        self.max_posts_per_second = max_posts_per_second
        # The window of the running loop: it learns across fan-outs of a warm container.
        self.window: AdaptiveWindow | None = None
        self.on_gone = on_gone
        self.concurrency = concurrency
        self.backoff = backoff or Backoff()
        # None sleeps on the loop (asyncio.sleep); an injected one (tests) is called as it is.
        self.sleep = sleep
        self._posts: ThreadPoolExecutor | None = None
        self._cleanup: ThreadPoolExecutor | None = None
        self._loop = LoopThread("fanout-post-loop")
        self._build_lock = threading.Lock()
        # Held while a post is handed to the loop, and by close() while it stops the loop: a
        # fan-out that outlives its loop then sees a new one (or none) and ends.
        self._schedule_lock = threading.Lock()

    def deliver(self, pages: Iterable[Page], data: bytes, result: FanoutResult) -> None:
        """Post ``data`` to every target of every page; count posts, and pages not yet counted."""
        self.deliver_targets(targets_of(counted(pages, result)), data, result)

    def deliver_targets(self, targets: Iterable[Target], data: bytes, result: FanoutResult) -> None:
        """Post ``data`` to each target; returns when every post has ended."""
        # This thread reads the audience (blocking DynamoDB pages) and hands each target to
        # the loop thread, which has up to `concurrency` posts in flight: no thread per post
        # for an AsyncPoster, and one retry loop for every kind of poster.
        import asyncio

        loop = self._loop.get()
        post = self._post_function(loop)
        slots = threading.BoundedSemaphore(self.concurrency)
        errors: list[BaseException] = []
        # The loop holds tasks weakly: a task is kept alive by its future, held here.
        in_flight: set[Future[None]] = set()
        lock = threading.Lock()

        def release(future: Future[None]) -> None:
            with lock:
                in_flight.discard(future)
            if future.cancelled():  # close() cancelled it: this post's end is unknown
                errors.append(RuntimeError("the Deliverer was closed during a fan-out"))
            elif (error := future.exception()) is not None:
                errors.append(error)
            slots.release()

        try:
            for target in targets:
                slots.acquire()
                try:
                    with self._schedule_lock:
                        if self._loop.current is not loop:
                            raise RuntimeError("the Deliverer was closed during a fan-out")
                        future = asyncio.run_coroutine_threadsafe(
                            self._deliver_one(post, target, data, result), loop
                        )
                except BaseException:
                    slots.release()  # never scheduled: its slot would never come back
                    raise
                with lock:
                    in_flight.add(future)
                future.add_done_callback(release)
        finally:
            # Wait for the posts in flight, even when reading the audience failed.
            for _ in range(self.concurrency):
                slots.acquire()
        if errors:
            raise errors[0]

    # -- one target ---------------------------------------------------------------------

    async def _deliver_one(
        self, post: _Post, target: Target, data: bytes, result: FanoutResult
    ) -> None:
        import asyncio

        window = self._window()

        async def attempt() -> PostOutcome:
            started = await window.acquire()
            try:
                outcome = await post(target.endpoint, target.connection_id, data)
            except BaseException:
                window.release(started, throttled=False)
                raise
            window.release(started, throttled=outcome.status is PostStatus.THROTTLED)
            return outcome

        outcome = await attempt()
        for delay in self.backoff.delays():
            if not outcome.status.retryable:
                break
            result.add_retry(throttled=outcome.status is PostStatus.THROTTLED)
            await pause(self.sleep or asyncio.sleep, delay)
            outcome = await attempt()
        gone_error = None
        if outcome.status is PostStatus.GONE:
            # The gone connection's own id, from the target that was posted to; the
            # callback blocks (DynamoDB), so it runs on a thread while the loop posts on.
            try:
                await asyncio.get_running_loop().run_in_executor(
                    self._pool("_cleanup", "fanout-gone"), self.on_gone, target.connection_id
                )
            except Exception as error:  # the next 410 or the TTL retries it
                gone_error = error
        self._count(target, outcome, gone_error, result)

    def _window(self) -> AdaptiveWindow:
        # Built on the loop thread, and again after close(): a new loop, a new window.
        if self.window is None:
            self.window = AdaptiveWindow(
                self.concurrency,
                adaptive=self.adaptive,
                max_rate=self.max_posts_per_second,
            )
        return self.window

    def _post_function(self, loop: asyncio.AbstractEventLoop) -> _Post:
        poster = async_poster(self.poster)
        if poster is not None:
            return poster.post_async
        posts = self._pool("_posts", "fanout-post")
        blocking = self.poster.post

        def post(endpoint: str, connection_id: str, data: bytes) -> Awaitable[PostOutcome]:
            return loop.run_in_executor(posts, blocking, endpoint, connection_id, data)

        return post

    def _count(
        self,
        target: Target,
        outcome: PostOutcome,
        gone_error: Exception | None,
        result: FanoutResult,
    ) -> None:
        if outcome.status is PostStatus.OK:
            result.add_outcome(delivered=True)
        elif outcome.status is PostStatus.GONE:
            if gone_error is None:
                result.add_outcome(gone=True)
            else:
                reason = f"410, delete failed: {gone_error}"
                result.add_outcome(failure=Failure(target.connection_id, reason, True))
        else:
            reason = outcome.detail or outcome.status.value
            retryable = outcome.status.retryable
            if retryable:
                reason = f"{reason} after {self.backoff.attempts} attempts"
            result.add_outcome(failure=Failure(target.connection_id, reason, retryable))

    # -- what is built on first use and kept for the container -------------------------

    def _pool(self, attribute: str, prefix: str) -> ThreadPoolExecutor:
        pool: ThreadPoolExecutor | None = getattr(self, attribute)
        if pool is None:
            with self._build_lock:
                pool = getattr(self, attribute)
                if pool is None:
                    pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix=prefix)
                    setattr(self, attribute, pool)
        return pool

    async def _shutdown_loop(self) -> None:
        import asyncio

        # Posts still in flight are cancelled, so a fan-out waiting on them ends (and
        # raises) instead of waiting forever on a stopped loop.
        current = asyncio.current_task()
        while tasks := [task for task in asyncio.all_tasks() if task is not current]:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        poster = async_poster(self.poster)
        if poster is not None:
            await poster.aclose()

    def close(self) -> None:
        """Stop the loop and the threads; close the loop's connections. Usable again after."""
        with self._schedule_lock:
            self._loop.stop(self._shutdown_loop)
            self.window = None
        for attribute in ("_posts", "_cleanup"):
            pool = getattr(self, attribute)
            if pool is not None:
                pool.shutdown(wait=True)
                setattr(self, attribute, None)
