"""``sqs_batched``'s fan-out tree, stepped through time.

The sending invocation enqueues one read task per partition and returns. A partition bigger
than a page is cut, after its first page, into up to ``MAX_RANGES`` key ranges read by
chains of their own. Lambda's SQS event
source runs batches of up to ``batch_size`` messages, five at once at first and 300 more a
minute while messages wait. A worker handles its records in turn: a read task reads one page,
enqueues the rest of its partition and the page's targets past ``inline`` as post batches,
then posts ``inline`` targets; a post batch posts its targets. Every posting worker draws on
the account's token bucket: while it is short, the adaptive window (AIMD) leaves each worker a
share in proportion to its own rate. Messages are taken first in, first out.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from fanout_core.ranges import MAX_RANGES
from fanout_core.simulate.outcome import Deliveries, Outcome
from fanout_core.simulate.pieces import (
    FluidBucket,
    Partition,
    ReadPlan,
    event_source_capacity,
    page_seconds,
    post_rate,
)
from fanout_core.simulate.platform import Platform
from fanout_core.sizes import page_read_units
from fanout_core.worker import REQUEUE_DELAY_SECONDS

STEPS_BEFORE_COARSER = 5_000  # a run longer than expected doubles its step, to stay fast
MAX_SECONDS = 86_400.0  # a guard: a platform that can never finish


@dataclass
class _Message:
    visible_at: float
    partition: Partition | None  # a read task's partition; None: a post batch
    items: float  # a read task: items left to read; a post batch: targets
    attempt: int = 0
    ranged: bool = False  # a read task of one key range: it goes on alone, never splits


@dataclass
class _Phase:
    kind: str  # "wait" (seconds) or "post" (targets)
    left: float
    rate: float = 0.0  # a post phase's own posts a second
    then: list[_Message] = field(default_factory=list)  # enqueued when the phase ends
    attempt: int = 0
    lost: float = 0.0  # posts refused at every attempt (no adaptive window)


@dataclass
class _Worker:
    started: float
    phases: deque[_Phase]


class TreeRun:
    """One fan-out through the tree; ``run()`` fills an ``Outcome``."""

    def __init__(self, plan: ReadPlan, platform: Platform, outcome: Outcome) -> None:
        self.plan = plan
        self.platform = platform
        self.outcome = outcome
        self.queue: deque[_Message] = deque()
        self.delayed: list[_Message] = []  # requeued post batches SQS still holds
        self.lost: dict[int, float] = {}  # posts refused at every attempt, by next attempt
        self.workers: list[_Worker] = []
        self.bucket = FluidBucket(platform.account_rate, platform.account_burst)
        self.deliveries = Deliveries()
        self.warm = platform.warm_workers  # containers up: a worker past them starts cold
        self.backlog_since: float | None = None
        self.now = 0.0

    def send_seconds(self, entries: int) -> float:
        """SendMessageBatch calls of ``entries`` messages, one after another; counted."""
        calls = math.ceil(entries / self.platform.entries_per_call)
        self.outcome.sqs_requests += calls
        return calls * self.platform.sqs_request

    def run(self) -> Outcome:
        """Step until the queue is empty and every worker is done."""
        p = self.platform
        sender = p.fanout_overhead + self.send_seconds(len(self.plan.partitions))
        self.outcome.sender_seconds = sender
        self.outcome.over_integration_timeout = sender > p.integration_timeout
        self.outcome.gb_seconds += sender * p.gb
        for part in self.plan.partitions:
            self.queue.append(_Message(sender, part, part.items))
        self.now = sender
        dt = self.step_seconds()
        steps = 0
        while self.queue or self.workers or self.delayed or any(self.lost.values()):
            if not (self.queue or self.workers or self.delayed):
                for attempt, posts in list(self.lost.items()):  # the last fractions
                    self.lost[attempt] = 0.0
                    self.requeue(_Phase("post", 0, attempt=attempt - 1, lost=posts), flush=True)
            steps += 1
            if steps % STEPS_BEFORE_COARSER == 0:
                dt *= 2
            if self.now > MAX_SECONDS:
                self.outcome.notes.append(f"stopped at {MAX_SECONDS:g} simulated seconds")
                break
            self.start_workers()
            self.advance(dt)
        self.outcome.record(self.deliveries)
        return self.outcome

    def step_seconds(self) -> float:
        """A step short against the run: about 1/2,000 of its expected length."""
        rate = self.platform.account_rate or 10_000.0
        expected = max(0.05, self.plan.returned / rate, 2 * self.platform.post_latency)
        return min(0.1, max(0.001, expected / 2_000))

    def start_workers(self) -> None:
        """Start invocations for visible messages, as many as the event source allows."""
        p = self.platform
        for message in [m for m in self.delayed if m.visible_at <= self.now]:
            self.delayed.remove(message)
            self.queue.append(message)
        if not self.queue or self.queue[0].visible_at > self.now:
            if not self.queue:
                self.backlog_since = None  # idle: the event source falls back to five
            return
        if self.backlog_since is None:
            self.backlog_since = self.now
        capacity = event_source_capacity(p, self.now - self.backlog_since)
        while self.queue and self.queue[0].visible_at <= self.now and len(self.workers) < capacity:
            batch: list[_Message] = []
            while self.queue and self.queue[0].visible_at <= self.now and len(batch) < p.batch_size:
                batch.append(self.queue.popleft())
            cold = len(self.workers) >= self.warm
            self.warm = max(self.warm, len(self.workers) + 1)
            phases = deque([_Phase("wait", p.invoke_overhead + (p.cold_start if cold else 0))])
            for message in batch:
                phases.extend(self.record_phases(message))
            self.workers.append(_Worker(self.now, phases))
            self.outcome.invocations += 1
            self.outcome.sqs_requests += 2  # the event source's receive and its delete
        self.outcome.peak_workers = max(self.outcome.peak_workers, len(self.workers))

    def record_phases(self, message: _Message) -> list[_Phase]:
        """What a worker does for one record."""
        p = self.platform
        if message.partition is None:
            return [self.post_phase(message.items, message.attempt)]
        part = message.partition
        page = min(part.page_items(self.plan.limit), int(message.items))
        kept = page * part.returned // max(part.items, 1)
        self.outcome.dynamodb_requests += 1
        self.outcome.read_units += page_read_units(math.ceil(page * part.item_bytes))
        then: list[_Message] = []
        left = int(message.items) - page
        read = page_seconds(page, kept, part.item_bytes, p)
        if left > 0 and message.ranged:
            then.append(_Message(0.0, part, left, ranged=True))
        elif left > 0:
            # The first page of a bigger partition: its largest key, then up to MAX_RANGES
            # key ranges of the rest, each a chain of its own (fanout_core.ranges).
            self.outcome.dynamodb_requests += 1
            self.outcome.read_units += page_read_units(1)
            read += p.read_request
            count = min(MAX_RANGES, math.ceil(left / part.page_items(self.plan.limit)))
            share, extra = divmod(left, count)
            then += [_Message(0.0, part, share + (i < extra), ranged=True) for i in range(count)]
        over = kept - min(kept, p.inline)
        per = p.targets_per_message
        then += [_Message(0.0, None, min(per, over - start)) for start in range(0, over, per)]
        send = self.send_seconds(len(then)) if then else 0.0
        return [
            _Phase("wait", read),
            _Phase("wait", send, then=then),
            self.post_phase(min(kept, p.inline)),
        ]

    def post_phase(self, targets: float, attempt: int = 0) -> _Phase:
        return _Phase("post", targets, post_rate(targets, self.platform), attempt=attempt)

    def advance(self, dt: float) -> None:
        """One step: share the bucket among posting workers, move every worker on."""
        p = self.platform
        posting = [w.phases[0] for w in self.workers if w.phases and w.phases[0].kind == "post"]
        demand = sum(phase.rate for phase in posting) * dt
        allowed = self.bucket.available(dt)
        share = 1.0 if demand <= allowed else allowed / demand
        # Attempts the workers make: their windows' own without the adaptive window; with it,
        # at least one post in flight each (the window does not close), which is more than
        # the bucket allows once workers outnumber rate x latency.
        attempts = demand
        if p.adaptive:
            floor = sum(min(phase.rate, 1 / p.post_latency) for phase in posting) * dt
            attempts = max(floor, min(demand, allowed))
        refused = max(0.0, attempts - allowed)
        if refused > 0:
            self.outcome.throttled += refused
        elif share < 1.0:
            self.count_cycles(posting, share, dt)
        # A post refused at every attempt goes back on the queue (the worker's requeue).
        lost = (refused / attempts) ** p.post_attempts if refused else 0.0
        landed = used = 0.0
        done: list[_Worker] = []
        for worker in self.workers:
            budget = dt
            while budget > 1e-12 and worker.phases:
                phase = worker.phases[0]
                if phase.kind == "wait" or phase.left <= 1e-9:
                    spent = min(budget, phase.left)
                else:
                    rate = phase.rate * share
                    spent = min(budget, phase.left / rate) if rate > 0 else budget
                    posts = min(phase.left, rate * spent)
                    used += posts
                    landed += posts * (1 - lost)
                    phase.left -= posts
                    phase.lost += posts * lost
                    if phase.lost and phase.left <= 1e-9:
                        self.requeue(phase)
                phase.left = max(0.0, phase.left - (spent if phase.kind == "wait" else 0))
                budget -= spent
                if phase.left <= 1e-9:
                    worker.phases.popleft()
                    for message in phase.then:
                        message.visible_at = self.now + dt - budget
                        self.queue.append(message)
            if not worker.phases:
                done.append(worker)
                self.outcome.gb_seconds += (self.now + dt - budget - worker.started) * p.gb
        self.bucket.spend(used, dt)
        self.deliveries.add(self.now, self.now + dt, landed)
        self.now += dt
        for worker in done:
            self.workers.remove(worker)

    def requeue(self, phase: _Phase, *, flush: bool = False) -> None:
        """Posts past their attempts: a post batch again, held for the worker's delay.

        Fractions of posts (a fluid) are pooled per attempt until a whole one is lost.
        """
        attempt = phase.attempt + 1
        if attempt >= self.platform.worker_attempts:
            return  # the record fails: what is left reaches the dead-letter queue
        pooled = self.lost.get(attempt, 0.0) + phase.lost
        targets = pooled if flush else math.floor(pooled)
        self.lost[attempt] = pooled - targets
        if targets <= 0:
            return
        self.outcome.requeued += targets
        delay = REQUEUE_DELAY_SECONDS * attempt
        self.delayed.append(_Message(self.now + delay, None, targets, attempt))
        self.outcome.sqs_requests += 1

    def count_cycles(self, posting: list[_Phase], share: float, dt: float) -> None:
        """429s of the adaptive window while the bucket is short: one per window cycle."""
        latency = self.platform.post_latency
        for phase in posting:
            # The window settles at its share of posts in flight; it climbs back from half
            # of it by one a round, so one 429 ends each cycle of window/2 rounds.
            window = max(1.0, phase.rate * share * latency)
            self.outcome.throttled += dt / (max(1.0, window / 2) * latency)
