"""The SQS worker's side: post batches, and the read tasks of ``sqs_batched``'s fan-out tree.

``process_records`` handles each record of an SQS event on its own. Targets whose posts
failed in a way a retry may fix (429, 5xx, no answer) go back on the queue as a post batch
of just those ids, held for a growing delay, up to ``MAX_ATTEMPTS`` times: a record is not
redelivered for a few of its posts, so its other targets are not posted twice. Only a
record that cannot be handled (or requeued) is reported in ``batchItemFailures``. A read
task reads one page of its partition, enqueues the rest of the partition as the next task
(the first page of a bigger partition cuts the rest into key ranges, each read by a chain of
its own: ``fanout_core.ranges``) and what is over ``inline`` targets as post batches, and
only then posts the first ``inline`` targets itself: no invocation reads more than a page
or posts more than a bounded batch, and a crash after the enqueue loses nothing (the
redelivered task reads and posts its page again: at least once, duplicates dropped by the
frame's ``id``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from fanout_core.audience import Page, Target
from fanout_core.delivery import Deliverer
from fanout_core.keys import CONNECTION_PREFIX
from fanout_core.queue import Batch, BatchSender, ReadTask, SqsResponse, decode, pack
from fanout_core.ranges import MAX_RANGES, split
from fanout_core.reads import LIBRARY_PAGE_ITEMS
from fanout_core.result import FanoutResult

if TYPE_CHECKING:
    from fanout_core.store import ConnectionStore

log = logging.getLogger(__name__)

# Items a read task reads per page unless FANOUT_PAGE_SIZE says otherwise: a page of index
# entries (~110 bytes each) is ~110 KB, 14 read units; its posts take a worker ~0.7 s at
# C = 32 and L = 20 ms.
DEFAULT_PAGE_ITEMS = LIBRARY_PAGE_ITEMS
DEFAULT_INLINE = 100  # targets a worker posts itself; the rest go on as post batches
MAX_ATTEMPTS = 5  # requeues of a target whose posts keep failing; then its record fails
REQUEUE_DELAY_SECONDS = 2  # times the attempt: SQS holds a requeued batch this long


class TaskRunner:
    """Runs read tasks: one page of a partition, the rest handed on through the queue."""

    def __init__(
        self,
        store: ConnectionStore,
        sender: Callable[[FanoutResult], BatchSender],
        *,
        page_size: int | None = None,
        inline: int = DEFAULT_INLINE,
        per_message: int | None = None,
        requeue_delay: int = REQUEUE_DELAY_SECONDS,
        max_ranges: int = MAX_RANGES,
    ) -> None:
        self.max_ranges = max_ranges
        self.requeue_delay = requeue_delay
        self.store = store
        self.sender = sender  # a BatchSender to the queue, counting in the given result
        self.page_size = page_size or DEFAULT_PAGE_ITEMS
        self.inline = inline
        self.per_message = per_message or inline

    def run(self, task: ReadTask, deliverer: Deliverer, result: FanoutResult) -> None:
        """Read the task's page; enqueue the next task and the overflow; post the rest."""
        page, next_start = self.store.partition_page(
            task.partition, task.start, page_size=self.page_size, key_range=task.key_range
        )
        result.add_page(page)
        exclude = set(task.exclude)
        targets = [t for t in page.targets if t.connection_id not in exclude]
        sender = self.sender(result)
        if next_start is not None:
            for rest in self.rest(task, page, next_start, result):
                sender.add(rest)
        for batch in pack(targets[self.inline :], task.frame, self.per_message, task.message_id):
            sender.add(batch)
        sender.flush()  # before posting: a crash now is redelivered, never lost
        self.post(targets[: self.inline], task.frame, 0, deliverer, result)

    def rest(
        self, task: ReadTask, page: Page, start: dict[str, Any], result: FanoutResult
    ) -> list[ReadTask]:
        """The tasks for the rest of the partition: the first page of a partition that has
        more splits it into key ranges (``ranges.split``); a range's task goes on alone."""
        after = start.get("gsi1sk", {}).get("S")
        if task.key_range is not None or self.max_ranges <= 1 or not isinstance(after, str):
            return [task.next(start)]
        last, read = self.store.partition_last_key(task.partition)
        result.add_page(read)
        if last is None:
            return [task.next(start)]
        seen = [CONNECTION_PREFIX + target.connection_id for target in page.targets]
        parts = split(after, last, seen=seen, most=self.max_ranges)
        return task.split(start, parts)

    def post(
        self,
        targets: list[Target],
        frame: bytes,
        attempt: int,
        deliverer: Deliverer,
        result: FanoutResult,
    ) -> None:
        """Post to ``targets``; requeue the ones whose posts a retry may fix, later.

        Raises when they are past ``MAX_ATTEMPTS``: the record is then redelivered (and,
        through its redrive policy, reaches the dead-letter queue).
        """
        deliverer.deliver_targets(targets, frame, result)
        retry = {f.connection_id for f in result.failures if f.retryable}
        again = [t for t in targets if t.connection_id in retry]
        if not again:
            return
        if attempt + 1 >= MAX_ATTEMPTS:
            raise RuntimeError(f"{len(again)} posts still failing after {MAX_ATTEMPTS} attempts")
        sender = self.sender(result)
        delay = min(900, self.requeue_delay * (attempt + 1))  # SQS's DelaySeconds cap
        for batch in pack(again, frame, self.per_message, result.message_id):
            sender.add(replace(batch, attempt=attempt + 1, delay_seconds=delay))
        sender.flush()
        result.requeued += len(again)


def process_records(
    event: Mapping[str, Any], deliverer: Deliverer, tasks: TaskRunner | None = None
) -> tuple[SqsResponse, list[FanoutResult]]:
    """Handle every record of an SQS event; the partial-batch response and per-record counts.

    A record is reported failed when one of its posts failed in a way a retry may fix
    (429, 5xx, no answer), its task could not read or enqueue, or its body is unreadable
    (so it reaches the dead-letter queue).
    """
    failures: list[dict[str, str]] = []
    results: list[FanoutResult] = []
    records = event.get("Records")
    if not isinstance(records, list):
        raise ValueError("an SQS event has a 'Records' list")
    for record in records:
        message_id = record.get("messageId") if isinstance(record, dict) else None
        if not isinstance(message_id, str):
            log.error("SQS record without a messageId: skipped")
            continue
        try:
            message = decode(record["body"])
            result = FanoutResult(strategy="sqs_worker", room=None, message_id=message.message_id)
            if isinstance(message, Batch):
                if tasks is None:
                    deliverer.deliver_targets(message.targets(), message.frame, result)
                else:
                    tasks.post(message.targets(), message.frame, message.attempt, deliverer, result)
            elif tasks is None:
                raise ValueError("a read task, and no task runner to read it")
            else:
                result.audience = message.partition
                tasks.run(message, deliverer, result)
        except Exception:  # one bad record must not fail its neighbours
            log.exception("SQS record %s could not be processed", message_id)
            failures.append({"itemIdentifier": message_id})
            continue
        results.append(result)
        if result.failed_retryable and not result.requeued:
            failures.append({"itemIdentifier": message_id})
    return {"batchItemFailures": failures}, results
