"""Delivery: post one frame to every target at bounded concurrency, clean up 410s, retry 429/5xx."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from fanout_core.management import AsyncPoster, Poster, PostOutcome, PostStatus, async_poster
from fanout_core.result import Failure, FanoutResult
from fanout_core.store import ConnectionStore, Page, Target

if TYPE_CHECKING:
    # Imported where used: asyncio costs cold start, and only a fan-out needs it.
    import asyncio


class Deliverer:
    """Posts frames with at most ``concurrency`` posts in flight.

    Pages are consumed as they arrive and a page is read only when a slot is free, so
    memory holds about ``concurrency`` targets however large the audience.

    A poster with ``post_async`` (``FastPoster``) posts from one event-loop thread that
    the Deliverer keeps for the container; any other poster posts from a pool of
    ``concurrency`` threads. Both paths retry, back off, clean up and count alike.
    """

    def __init__(
        self,
        store: ConnectionStore,
        poster: Poster,
        *,
        concurrency: int = 32,
        max_attempts: int = 5,
        backoff_base: float = 0.05,
        backoff_cap: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.poster = poster
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        # The default sleeps without blocking the event loop; an injected one (tests) is
        # called as it is, also from the loop.
        self.sleep = sleep
        self._executor: ThreadPoolExecutor | None = None
        self._cleanup: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._executor_lock = threading.Lock()
        # Held while a post is handed to the loop, and by close() to stop that for good.
        self._schedule_lock = threading.Lock()
        self._closed = False

    def deliver(self, pages: Iterable[Page], data: bytes, result: FanoutResult) -> None:
        """Post ``data`` to every target of every page; count pages and posts in ``result``."""

        def targets() -> Iterator[Target]:
            for page in pages:
                result.add_page(page)
                yield from page.targets

        self.deliver_targets(targets(), data, result)

    def deliver_targets(self, targets: Iterable[Target], data: bytes, result: FanoutResult) -> None:
        """Post ``data`` to each target; returns when every post has ended."""
        poster = async_poster(self.poster)
        if poster is not None:
            self._deliver_from_loop(poster, targets, data, result)
            return
        executor = self._pool()
        slots = threading.BoundedSemaphore(self.concurrency)
        errors: list[BaseException] = []

        def release(future: Future[None]) -> None:
            error = future.exception()
            if error is not None:
                errors.append(error)
            slots.release()

        try:
            for target in targets:
                slots.acquire()
                executor.submit(self._deliver_one, target, data, result).add_done_callback(release)
        finally:
            # Wait for the posts in flight, even when reading the audience failed.
            for _ in range(self.concurrency):
                slots.acquire()
        if errors:
            raise errors[0]

    def post_with_retries(self, target: Target, data: bytes, result: FanoutResult) -> PostOutcome:
        """One target's post, retried with full-jitter backoff on 429, 5xx and timeouts."""
        outcome = self.poster.post(target.endpoint, target.connection_id, data)
        attempt = 1
        while outcome.status.retryable and attempt < self.max_attempts:
            self.sleep(self._backoff(outcome, attempt, result))
            outcome = self.poster.post(target.endpoint, target.connection_id, data)
            attempt += 1
        return outcome

    # -- one target ---------------------------------------------------------------------

    def _backoff(self, outcome: PostOutcome, attempt: int, result: FanoutResult) -> float:
        result.add_retry(throttled=outcome.status is PostStatus.THROTTLED)
        ceiling = min(self.backoff_cap, self.backoff_base * (2 ** (attempt - 1)))
        return random.uniform(0, ceiling)

    def _deliver_one(self, target: Target, data: bytes, result: FanoutResult) -> None:
        outcome = self.post_with_retries(target, data, result)
        delete_error = None
        if outcome.status is PostStatus.GONE:
            # The gone connection's own id, from the target that was posted to.
            try:
                self.store.disconnect(target.connection_id)
            except Exception as error:  # the next 410 or the TTL retries it
                delete_error = error
        self._count(target, outcome, delete_error, result)

    async def _deliver_one_async(
        self, poster: AsyncPoster, target: Target, data: bytes, result: FanoutResult
    ) -> None:
        import asyncio

        outcome = await poster.post_async(target.endpoint, target.connection_id, data)
        attempt = 1
        while outcome.status.retryable and attempt < self.max_attempts:
            delay = self._backoff(outcome, attempt, result)
            if self.sleep is time.sleep:
                await asyncio.sleep(delay)
            else:
                self.sleep(delay)
            outcome = await poster.post_async(target.endpoint, target.connection_id, data)
            attempt += 1
        delete_error = None
        if outcome.status is PostStatus.GONE:
            # A blocking DynamoDB delete: on a thread, so the loop keeps posting meanwhile.
            try:
                await asyncio.get_running_loop().run_in_executor(
                    self._cleanup_pool(), self.store.disconnect, target.connection_id
                )
            except Exception as error:
                delete_error = error
        self._count(target, outcome, delete_error, result)

    def _count(
        self,
        target: Target,
        outcome: PostOutcome,
        delete_error: Exception | None,
        result: FanoutResult,
    ) -> None:
        if outcome.status is PostStatus.OK:
            result.add_outcome(delivered=True)
        elif outcome.status is PostStatus.GONE:
            if delete_error is None:
                result.add_outcome(gone=True)
            else:
                reason = f"410, delete failed: {delete_error}"
                result.add_outcome(failure=Failure(target.connection_id, reason, True))
        else:
            reason = outcome.detail or outcome.status.value
            retryable = outcome.status.retryable
            if retryable:
                reason = f"{reason} after {self.max_attempts} attempts"
            result.add_outcome(failure=Failure(target.connection_id, reason, retryable))

    # -- the event-loop path ------------------------------------------------------------

    def _deliver_from_loop(
        self, poster: AsyncPoster, targets: Iterable[Target], data: bytes, result: FanoutResult
    ) -> None:
        # This thread reads the audience (blocking DynamoDB pages) and hands each target to
        # the loop thread, which has up to `concurrency` posts in flight on pooled
        # keep-alive connections: no thread per post, no GIL hand-off per socket read.
        import asyncio

        loop = self._event_loop()
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
                        if self._closed:
                            raise RuntimeError("the Deliverer was closed during a fan-out")
                        future = asyncio.run_coroutine_threadsafe(
                            self._deliver_one_async(poster, target, data, result), loop
                        )
                except BaseException:
                    slots.release()  # never scheduled: its slot would never come back
                    raise
                with lock:
                    in_flight.add(future)
                future.add_done_callback(release)
        finally:
            for _ in range(self.concurrency):
                slots.acquire()
        if errors:
            raise errors[0]

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        import asyncio

        # Built on first use, not at import; kept for the container's next invocations.
        if self._loop is None:
            with self._executor_lock:
                if self._loop is None:
                    loop = asyncio.new_event_loop()
                    thread = threading.Thread(
                        target=loop.run_forever, name="fanout-post-loop", daemon=True
                    )
                    thread.start()
                    self._loop, self._loop_thread = loop, thread
        return self._loop

    async def _shutdown_loop(self) -> None:
        import asyncio

        # Posts still in flight are cancelled, so a fan-out waiting on them ends (and
        # raises) instead of waiting forever on a stopped loop.
        current = asyncio.current_task()
        while tasks := [task for task in asyncio.all_tasks() if task is not current]:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        aclose = getattr(async_poster(self.poster), "aclose", None)
        if aclose is not None:
            await aclose()

    def _cleanup_pool(self) -> ThreadPoolExecutor:
        if self._cleanup is None:
            with self._executor_lock:
                if self._cleanup is None:
                    self._cleanup = ThreadPoolExecutor(
                        max_workers=self.concurrency, thread_name_prefix="fanout-gone"
                    )
        return self._cleanup

    def _pool(self) -> ThreadPoolExecutor:
        # Built on first use, not at import; kept for the container's next invocations.
        if self._executor is None:
            with self._executor_lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(
                        max_workers=self.concurrency, thread_name_prefix="fanout-post"
                    )
        return self._executor

    def close(self) -> None:
        """Stop the worker threads and the loop; close the loop's connections."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        with self._schedule_lock:
            self._closed = True
        loop, thread = self._loop, self._loop_thread
        if loop is not None and thread is not None:
            import asyncio

            asyncio.run_coroutine_threadsafe(self._shutdown_loop(), loop).result(timeout=10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()
            self._loop = self._loop_thread = None
        if self._cleanup is not None:
            self._cleanup.shutdown(wait=True)
            self._cleanup = None
        with self._schedule_lock:
            # Usable again, on a new loop; a fan-out still holding the old one fails fast.
            self._closed = False
