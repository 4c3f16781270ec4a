"""FanoutResult: what one fan-out did, in counts."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from fanout_core import metrics
from fanout_core.audience import Page

# A fan-out to 100,000 dead connections must not hold 100,000 reasons in memory.
MAX_FAILURES_KEPT = 100
# The summary's fields a log line leaves out: a room or a principal is the client's text.
NOT_LOGGED = ("room", "audience")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Failure:
    """A post that did not deliver and was not a 410."""

    connection_id: str
    reason: str
    retryable: bool = False  # it failed on 429, 5xx or a timeout: worth a later retry


@dataclass
class FanoutResult:
    """Counts of one fan-out. Safe to update from several threads through its methods."""

    strategy: str
    room: str | None
    message_id: str
    audience: str = ""  # "room:<name>", "user:<principal>", "connections:<n>", "everyone"
    duplicate: bool = False  # its idempotency key was used within the window: not fanned out
    seq: int | None = None  # its number in the room's history, when history is on
    delivered: int = 0
    gone: int = 0  # answered 410 and deleted with all memberships
    failed: int = 0
    failed_retryable: int = 0  # failures a later retry may fix (429, 5xx, timeout)
    failures: list[Failure] = field(default_factory=list)  # the first MAX_FAILURES_KEPT
    failure_reasons: Counter[str] = field(default_factory=Counter)
    retried: int = 0  # posts sent again after a 429, 5xx or timeout
    throttled: int = 0  # 429 answers among them
    enqueued: int = 0  # targets handed to SQS in post batches (sqs_batched)
    queue_messages: int = 0  # SQS messages: post batches and read tasks
    requeued: int = 0  # targets whose posts failed, handed back to SQS to retry later
    items_returned: int = 0  # live audience rows DynamoDB returned
    items_scanned: int = 0  # rows DynamoDB read before its filter
    dynamodb_requests: int = 0  # Query/Scan pages read to resolve the audience
    read_units: float | None = None  # ConsumedCapacity summed, when the backend reports it
    elapsed_seconds: float = 0.0
    posted_bytes: int = 0  # an answer to one caller (history, presence): the bytes it posted
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Its posts count in the invocation's metrics however it was made (a fan-out, a
        # resume, a worker's record, a duplicate).
        metrics.track(self)

    def add_page(self, page: Page) -> None:
        """Count one audience page."""
        with self._lock:
            self.dynamodb_requests += 1
            self.items_returned += len(page.targets)
            self.items_scanned += page.scanned
            if page.read_units is not None:
                self.read_units = (self.read_units or 0.0) + page.read_units

    def add_outcome(
        self, *, delivered: bool = False, gone: bool = False, failure: Failure | None = None
    ) -> None:
        """Count the end of one target's delivery."""
        with self._lock:
            if delivered:
                self.delivered += 1
            elif gone:
                self.gone += 1
            elif failure is not None:
                self.failed += 1
                self.failed_retryable += failure.retryable
                self.failure_reasons[failure.reason] += 1
                if len(self.failures) < MAX_FAILURES_KEPT:
                    self.failures.append(failure)

    def add_retry(self, *, throttled: bool) -> None:
        """Count one retried post."""
        with self._lock:
            self.retried += 1
            if throttled:
                self.throttled += 1

    def summary(self) -> dict[str, Any]:
        """The counts as plain data, for a log line."""
        return {
            "strategy": self.strategy,
            "room": self.room,
            "audience": self.audience,
            "message_id": self.message_id,
            "duplicate": self.duplicate,
            "seq": self.seq,
            "delivered": self.delivered,
            "gone": self.gone,
            "failed": self.failed,
            "failed_retryable": self.failed_retryable,
            "failure_reasons": dict(self.failure_reasons),
            "retried": self.retried,
            "throttled": self.throttled,
            "enqueued": self.enqueued,
            "queue_messages": self.queue_messages,
            "requeued": self.requeued,
            "items_returned": self.items_returned,
            "items_scanned": self.items_scanned,
            "dynamodb_requests": self.dynamodb_requests,
            "read_units": self.read_units,
            "elapsed_seconds": round(self.elapsed_seconds, 6),
        }


def report(kind: str, result: FanoutResult) -> None:
    """One log line for one fan-out (``kind``: fanout, history, sqs_worker): INFO, or
    WARNING when a post was throttled or failed; its counts as the ``counts`` field."""
    counts = {k: v for k, v in result.summary().items() if k not in NOT_LOGGED}
    level = logging.WARNING if result.failed or result.throttled else logging.INFO
    if log.isEnabledFor(level):
        log.log(
            level,
            "%s %s: %d delivered, %d gone, %d failed, %d throttled in %.1f ms",
            kind,
            result.message_id,
            result.delivered,
            result.gone,
            result.failed,
            result.throttled,
            result.elapsed_seconds * 1000,
            extra={"counts": counts},
        )


def counted(pages: Iterable[Page], result: FanoutResult) -> Iterator[Page]:
    """``pages`` as they are read, each counted in ``result``."""
    for page in pages:
        result.add_page(page)
        yield page
