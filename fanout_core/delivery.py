"""Delivery: post one frame to every target at bounded concurrency, clean up 410s, retry 429/5xx."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from fanout_core.management import Poster, PostOutcome, PostStatus
from fanout_core.result import Failure, FanoutResult
from fanout_core.store import ConnectionStore, Page, Target


class Deliverer:
    """Posts frames with at most ``concurrency`` posts in flight.

    Pages are consumed as they arrive and a page is read only when a worker is free,
    so memory holds about ``concurrency`` targets however large the audience.
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
        self.sleep = sleep
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()

    def deliver(self, pages: Iterable[Page], data: bytes, result: FanoutResult) -> None:
        """Post ``data`` to every target of every page; count pages and posts in ``result``."""

        def targets() -> Iterator[Target]:
            for page in pages:
                result.add_page(page)
                yield from page.targets

        self.deliver_targets(targets(), data, result)

    def deliver_targets(self, targets: Iterable[Target], data: bytes, result: FanoutResult) -> None:
        """Post ``data`` to each target; returns when every post has ended."""
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
            result.add_retry(throttled=outcome.status is PostStatus.THROTTLED)
            ceiling = min(self.backoff_cap, self.backoff_base * (2 ** (attempt - 1)))
            self.sleep(random.uniform(0, ceiling))
            outcome = self.poster.post(target.endpoint, target.connection_id, data)
            attempt += 1
        return outcome

    def _deliver_one(self, target: Target, data: bytes, result: FanoutResult) -> None:
        outcome = self.post_with_retries(target, data, result)
        if outcome.status is PostStatus.OK:
            result.add_outcome(delivered=True)
        elif outcome.status is PostStatus.GONE:
            # The gone connection's own id, from the target that was posted to.
            try:
                self.store.disconnect(target.connection_id)
            except Exception as error:  # the next 410 or the TTL retries it
                failure = Failure(target.connection_id, f"410, delete failed: {error}", True)
                result.add_outcome(failure=failure)
                return
            result.add_outcome(gone=True)
        else:
            reason = outcome.detail or outcome.status.value
            retryable = outcome.status.retryable
            if retryable:
                reason = f"{reason} after {self.max_attempts} attempts"
            result.add_outcome(failure=Failure(target.connection_id, reason, retryable))

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
        """Stop the worker threads."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
