"""Deliverer: post one frame to every target at bounded concurrency, retry 429/5xx, report 410s."""

from __future__ import annotations

import collections
import contextvars
import threading
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import CancelledError, ThreadPoolExecutor
from dataclasses import dataclass, field
from time import perf_counter
from typing import TYPE_CHECKING

from fanout_core import metrics
from fanout_core.audience import Target
from fanout_core.delivery.backoff import Backoff, Sleep, pause
from fanout_core.delivery.loop import LoopThread
from fanout_core.delivery.posting import Poster, PostOutcome, PostStatus, async_poster
from fanout_core.delivery.rate import AdaptiveWindow
from fanout_core.result import Failure, FanoutResult

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


@dataclass(eq=False)
class _Feed:
    """One fan-out: the targets read and not yet taken, and the workers that post them.

    The reading thread appends to ``queue`` and reads the counters; everything else is
    changed on the loop thread only.
    """

    post: _Post
    data: bytes
    result: FanoutResult
    queue: collections.deque[Target] = field(default_factory=collections.deque)
    idle: collections.deque[asyncio.Future[None]] = field(default_factory=collections.deque)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    workers: int = 0
    finished: int = 0  # targets whose delivery has ended
    wake_at: int = 0  # the reading thread waits for ``finished`` to reach it
    progress: threading.Event = field(default_factory=threading.Event)  # set: targets ended
    wake_pending: bool = False  # a call to wake workers is on its way to the loop
    ended: bool = False  # no more targets will be queued
    broken: bool = False  # a worker was cancelled (close()) before the end
    done: asyncio.Future[None] | None = None
    errors: list[BaseException] = field(default_factory=list)
    # The invocation's sample of post latencies (ms); None: no metrics, nothing timed.
    latency: metrics.Reservoir | None = None


class Deliverer:
    """Posts frames with at most ``concurrency`` posts in flight, from one event-loop thread.

    Pages are consumed as they arrive and read only while fewer than ``read_ahead`` targets
    (1.5 x ``concurrency``) are queued or in flight, so memory holds about that many targets
    however large the audience. An ``AsyncPoster`` posts on the loop itself; any other
    ``Poster`` posts from a pool of ``concurrency`` threads the loop hands posts to. Either
    way, up to ``concurrency`` workers on the loop take targets in turn, and retry, back off,
    report a 410 to ``on_gone`` and count. Posts start within an
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
        # Targets read ahead: those in flight and half as many queued, so that a worker
        # never waits for the reading thread, which is woken once per half a queue.
        self.read_ahead = concurrency + max(1, concurrency // 2)
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

    def deliver_targets(self, targets: Iterable[Target], data: bytes, result: FanoutResult) -> None:
        """Post ``data`` to each target; returns when every post has ended."""
        # This thread reads the audience (blocking DynamoDB pages) into a queue that workers
        # on the loop thread take targets from: a target costs a deque append here, and
        # this thread wakes the loop only when a worker is idle or one more can start, and
        # is woken only once per half a queue. One retry loop for every kind of poster.
        import asyncio

        loop = self._loop.get()
        feed = _Feed(self._post_function(loop), data, result, latency=metrics.latency_sample())
        queue, limit = feed.queue, self.read_ahead
        resume = max(1, (limit - self.concurrency) // 2)
        handed = 0
        try:
            for target in targets:
                queue.append(target)
                handed += 1
                if not feed.wake_pending and (feed.idle or feed.workers < self.concurrency):
                    feed.wake_pending = True
                    self._schedule(loop, self._feed, feed)
                if handed - feed.finished >= limit:
                    self._wait_for_progress(loop, feed, handed - limit + resume)
        finally:
            # Wait for the posts in flight, even when reading the audience failed.
            with self._schedule_lock:
                future = None
                if self._loop.current is loop:
                    future = asyncio.run_coroutine_threadsafe(self._finish(feed), loop)
            try:
                if future is None:
                    raise RuntimeError("the Deliverer was closed during a fan-out")
                future.result()
            except CancelledError:  # close() cancelled it: the posts' end is unknown
                raise RuntimeError("the Deliverer was closed during a fan-out") from None
        if feed.errors:
            raise feed.errors[0]

    def _schedule(
        self, loop: asyncio.AbstractEventLoop, callback: Callable[[_Feed], None], feed: _Feed
    ) -> None:
        # Under the lock that close() holds while it stops the loop: a fan-out that outlives
        # its loop sees a new one (or none) and ends.
        with self._schedule_lock:
            if self._loop.current is not loop:
                raise RuntimeError("the Deliverer was closed during a fan-out")
            loop.call_soon_threadsafe(callback, feed)

    def _wait_for_progress(
        self, loop: asyncio.AbstractEventLoop, feed: _Feed, finished: int
    ) -> None:
        """Block the reading thread until ``finished`` targets have ended."""
        feed.wake_at = finished
        while True:
            feed.progress.clear()  # then check: a worker sets it after counting, never lost
            if feed.finished >= finished:
                return
            if feed.broken or self._loop.current is not loop:
                raise RuntimeError("the Deliverer was closed during a fan-out")
            feed.progress.wait(1.0)

    # -- on the loop thread ---------------------------------------------------------------

    def _feed(self, feed: _Feed) -> None:
        """Wake an idle worker, or start one, for each target queued."""
        import asyncio

        feed.wake_pending = False  # first: a target queued from now on schedules another call
        waiting = len(feed.queue)
        while waiting and feed.idle:
            waiter = feed.idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                waiting -= 1
        while waiting and feed.workers < self.concurrency:
            task = asyncio.get_running_loop().create_task(self._work(feed))
            feed.workers += 1
            feed.tasks.add(task)  # the loop holds tasks weakly
            task.add_done_callback(feed.tasks.discard)
            waiting -= 1

    async def _finish(self, feed: _Feed) -> None:
        """No more targets: let the workers post what is queued, then wait for them."""
        import asyncio

        feed.ended = True
        self._feed(feed)
        while feed.idle:  # an idle worker now ends
            waiter = feed.idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
        if feed.workers:
            feed.done = asyncio.get_running_loop().create_future()
            await feed.done

    async def _work(self, feed: _Feed) -> None:
        """Post queued targets one after another until the fan-out has no more."""
        import asyncio

        loop = asyncio.get_running_loop()
        queue, window = feed.queue, self._window()
        try:
            while True:
                if queue:
                    target = queue.popleft()
                    try:
                        await self._deliver_one(feed, window, target)
                    except Exception as error:  # raised by the fan-out once every post ended
                        feed.errors.append(error)
                    feed.finished += 1
                    if feed.finished >= feed.wake_at and not feed.progress.is_set():
                        feed.progress.set()
                elif feed.ended:
                    return
                else:
                    waiter = loop.create_future()
                    feed.idle.append(waiter)
                    if queue:  # queued after the check above, before we were seen idle
                        feed.idle.pop()
                        continue
                    await waiter
        finally:
            feed.workers -= 1
            if not feed.ended:  # cancelled by close(): the reading thread must not wait on
                feed.broken = True
                feed.progress.set()
            elif feed.workers == 0 and feed.done is not None and not feed.done.done():
                feed.done.set_result(None)

    # -- one target ---------------------------------------------------------------------

    async def _deliver_one(self, feed: _Feed, window: AdaptiveWindow, target: Target) -> None:
        outcome = await self._attempt(feed, window, target)
        if outcome.status is PostStatus.OK:
            feed.result.add_outcome(delivered=True)
            return
        await self._retry(feed, window, target, outcome)

    @staticmethod
    async def _attempt(feed: _Feed, window: AdaptiveWindow, target: Target) -> PostOutcome:
        started = window.try_acquire()
        if started == 0:
            started = await window.acquire()
        sent = perf_counter()
        try:
            outcome = await feed.post(target.endpoint, target.connection_id, feed.data)
        except BaseException:
            window.release(started, throttled=False)
            raise
        if feed.latency is not None:
            feed.latency.add((perf_counter() - sent) * 1000.0)
        window.release(started, throttled=outcome.status is PostStatus.THROTTLED)
        return outcome

    async def _retry(
        self, feed: _Feed, window: AdaptiveWindow, target: Target, outcome: PostOutcome
    ) -> None:
        import asyncio

        result = feed.result
        for delay in self.backoff.delays():
            if not outcome.status.retryable:
                break
            result.add_retry(throttled=outcome.status is PostStatus.THROTTLED)
            await pause(self.sleep or asyncio.sleep, delay)
            outcome = await self._attempt(feed, window, target)
        gone_error = None
        if outcome.status is PostStatus.GONE:
            # The gone connection's own id, from the target that was posted to; the
            # callback blocks (DynamoDB), so it runs on a thread while the loop posts on,
            # in this fan-out's context: its deletes count in the invocation's metrics.
            try:
                await asyncio.get_running_loop().run_in_executor(
                    self._pool("_cleanup", "fanout-gone"),
                    contextvars.copy_context().run,
                    self.on_gone,
                    target.connection_id,
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
