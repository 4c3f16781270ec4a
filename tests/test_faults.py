"""The promise under injected faults: retries and redelivery keep it, nothing else deletes.

``FaultyMachine`` is the state machine of tests/support/machine.py with three more rules:

- a send while the Management API answers a target 429 or 500 (up to the attempts a post
  has; on sqs_batched, more, so the SQS record fails and is redelivered), holds the post
  past the client's timeout, or answers 410 for a connection still in the table;
- throttling armed on a DynamoDB operation (Query, Scan, GetItem, DeleteItem,
  BatchWriteItem, PutItem, UpdateItem), answered to a step that calls it at once and to
  whichever rules call it next: the botocore retries PynamoDB configures must absorb it
  (reads mid-pagination, the 410 cleanup's deletes, sweeps, joins, pings);
- on sqs_batched, an SQS worker that crashes after handling part of its batch, which the
  event source redelivers whole.

Every property of the base machine still holds after each step: each live member receives
every frame (exactly once; on sqs_batched at least once, and at most once per record naming
it that the worker handled), every connection answered 410 is deleted, and the table holds
exactly the model's rows.

Each test asserts afterwards that every rule ran and every operation was answered an
injected error at least once: a fault that never fires proves nothing.

The tests after it pin what happens when a fault outlasts the retries.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import boto3
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from fanout_core import handlers
from fanout_core.delivery import Backoff, Deliverer
from fanout_core.local.management_api import LocalManagementApi
from fanout_core.local.sqs_pump import SqsEventSource
from fanout_core.message import Message
from fanout_core.outgoing import outgoing
from fanout_core.store import ConnectionStore
from fanout_core.strategy import strategy_class
from tests.support.backends import STRATEGIES, Backend
from tests.support.clock import FakeClock
from tests.support.events import connect_event
from tests.support.faults import (
    RETRY_QUOTAS,
    THROTTLE,
    CrashingWorker,
    DynamoFaults,
    short_throttle_backoff,
)
from tests.support.harness import Chat, Harness, make_chat
from tests.support.hyp_strategies import ROOMS, count_step, message_texts
from tests.support.machine import (
    MAX_ATTEMPTS,
    POST_TIMEOUT,
    PROPERTY_BACKENDS,
    ChatMachine,
    FanoutMachine,
    error_of,
    machine_for,
    machine_settings,
    run_and_check_steps,
)
from tests.support.strategy_classes import SqsBatched

HANG = POST_TIMEOUT + 0.5  # an injected timeout holds the post longer than the client waits
DYNAMO_OPERATIONS = (
    "Query",
    "Scan",
    "GetItem",
    "DeleteItem",
    "BatchWriteItem",
    "PutItem",
    "UpdateItem",
)
MAX_PENDING = 6  # per operation: a call is attempted 9 times, so every armed fault passes
DYNAMO_ERRORS = [  # (code, HTTP status): what DynamoDB answers when it sheds load
    (THROTTLE, 400),
    ("ThrottlingException", 400),
    ("RequestLimitExceeded", 400),
    ("InternalServerError", 500),
]
FAULT_EXAMPLES = 0.1  # per strategy and backend: fast 10, thorough 100 (a timeout costs 1.5 s)
POST_FAULTS = ["429", "500", "429-any", "500-any", "timeout", "timeout-any", "410"]


class FaultyMachine(ChatMachine):
    """The chat machine plus Management API, DynamoDB and SQS worker faults."""

    STEPS = (*ChatMachine.STEPS, "chat_through_post_fault", "throttle")
    FAULTED_SENDS = ("chat_through_post_fault", "chat_through_worker_crash")
    answered: ClassVar[Counter[str]]  # over every run of a test: operation -> errors answered

    @classmethod
    def steps(cls) -> tuple[str, ...]:
        if cls.harness.config.strategy == "sqs_batched":
            return (*cls.STEPS, "chat_through_worker_crash")
        return cls.STEPS

    def __init__(self) -> None:
        super().__init__()
        self._dynamo: DynamoFaults | None = None
        # What this run has done, to steer draws toward what it has not. Only this run's own
        # steps: a draw that depended on earlier examples would not replay (Hypothesis calls
        # that a flaky strategy definition) and could not shrink.
        self.sends_done: set[str] = set()
        self.armed_every_operation = False  # by the run's first throttle
        RETRY_QUOTAS.refill()

    @property
    def dynamo(self) -> DynamoFaults:
        if self._dynamo is None:
            assert self.runtime is not None
            self._dynamo = DynamoFaults(self.runtime.store)
        return self._dynamo

    def teardown(self) -> None:
        if self._dynamo is not None:
            self._dynamo.close()
            type(self).answered.update(self._dynamo.answered)
        super().teardown()

    @precondition(FanoutMachine.has_sender)
    @rule(data=st.data())
    def chat(self, data: st.DataObject) -> None:
        """A send, or one a fault meets while its own rule has not run in this run.

        Hypothesis may leave a rule undrawn for a whole derandomized test (it did for the
        post faults on parallel_scan); this makes each faulted send likely in every run.
        """
        unmet = [
            step
            for step in self.FAULTED_SENDS
            if step in self.steps() and step not in self.sends_done
        ]
        step = data.draw(st.sampled_from(["chat", *unmet]), label="send") if unmet else "chat"
        if step == "chat_through_post_fault":
            self.chat_through_post_fault(data)
        elif step == "chat_through_worker_crash":
            self.chat_through_worker_crash(data)
        else:
            super().chat(data)

    @precondition(FanoutMachine.has_sender)
    @rule(data=st.data())
    def chat_through_post_fault(self, data: st.DataObject) -> None:
        """429 / 500 / a timeout for one target (or whichever post comes next), or a 410."""
        count_step("chat_through_post_fault")
        self.sends_done.add("chat_through_post_fault")
        sender, room = self.draw_sender_and_room(data, to_room=self.alternate(data))
        text = data.draw(message_texts(), label="text")
        if room is not None and not self.live_member(self.conns[sender], room):
            self.send(sender, room, text)  # refused with 403: no post to fault
            return
        receivers = sorted(c for c in self.audience(room) if self.conns[c].open)
        target = data.draw(st.sampled_from(receivers), label="target")
        kind = data.draw(st.sampled_from(POST_FAULTS), label="fault")
        # Within the attempts a post has, a 429 or 500 is absorbed by the delivery loop.
        # sqs_batched may get more: the record fails, SQS redelivers it, the next try passes.
        most = MAX_ATTEMPTS + 1 if self.pump is not None else MAX_ATTEMPTS - 1
        faults = self.h.api.faults
        one = None if kind.endswith("-any") else target
        if kind.startswith(("429", "500")):
            times = data.draw(st.integers(1, most), label="times")
            faults.add(int(kind[:3]), connection_id=one, times=times)
        elif kind.startswith("timeout"):
            faults.add(0, connection_id=one, hang_seconds=HANG)
        else:
            faults.add(410, connection_id=target)  # API Gateway says gone: gone it stays
        gone = frozenset([target]) if kind == "410" else frozenset()
        self.send(sender, room, text, injected_gone=gone)
        assert faults.pending() == 0, "an injected fault was never met"

    @rule(error=st.sampled_from(DYNAMO_ERRORS), times=st.integers(1, 3), data=st.data())
    def throttle(self, error: tuple[str, int], times: int, data: st.DataObject) -> None:
        """Arm errors on an operation, then take a step that calls it.

        The first throttle of a run also arms one error on every other operation: the
        derandomized fast profile draws few throttles, and would leave some operations
        untested. What the step leaves armed goes to whichever rules call the operation next.
        """
        count_step("throttle")
        operation = data.draw(st.sampled_from(DYNAMO_OPERATIONS), label="operation")
        if not self.armed_every_operation:
            self.armed_every_operation = True
            for other in DYNAMO_OPERATIONS:
                if other != operation:
                    self.dynamo.add(other, times=1, code=error[0], status=error[1])
        times = min(times, MAX_PENDING - self.dynamo.pending(operation))
        if times > 0:
            self.dynamo.add(operation, times=times, code=error[0], status=error[1])
        self.step_calling(operation, data)

    def step_calling(self, operation: str, data: st.DataObject) -> None:
        """A step that calls ``operation``, if the model allows one now."""
        live = self.senders()  # open and live: its join and ping reach the table
        if operation == "BatchWriteItem":
            if self.can_connect():
                self.connect(data.draw(st.lists(st.sampled_from(ROOMS), max_size=3)))
            return
        if operation == "Scan":
            if not self.has_expired() and live:
                self.expire(data)
            self.sweep()  # it scans the table even when nothing has expired
            return
        if not live and self.can_connect():
            self.connect([])  # someone to join, ping or leave
            live = self.senders()
        if not live:
            return
        if operation == "PutItem":
            cid = data.draw(st.sampled_from(live), label="cid")
            self.join_room(cid, data.draw(st.sampled_from(ROOMS), label="room"))
        elif operation == "GetItem":  # a send to a room reads the sender's membership
            cid = data.draw(st.sampled_from(live), label="cid")
            room = data.draw(st.sampled_from(ROOMS), label="room")
            self.send(cid, room, data.draw(message_texts(), label="text"))
        elif operation in ("UpdateItem", "Query"):  # a ping queries the memberships
            self.ping_as(data.draw(st.sampled_from(live), label="cid"))
        elif operation == "DeleteItem":
            cid = data.draw(st.sampled_from(live), label="cid")
            self.leave_room(cid, data.draw(st.sampled_from(ROOMS), label="room"))

    @precondition(lambda self: self.pump is not None and self.has_sender())
    @rule(data=st.data())
    def chat_through_worker_crash(self, data: st.DataObject) -> None:
        """The SQS worker crashes after some records; the whole batch comes back."""
        count_step("chat_through_worker_crash")
        self.sends_done.add("chat_through_worker_crash")
        sender, room = self.draw_sender_and_room(data, to_room=self.alternate(data))
        self.worker.arm(after=data.draw(st.integers(0, 3), label="after"))
        crashes = self.worker.crashes
        refused = room is not None and not self.live_member(self.conns[sender], room)
        self.send(sender, room, data.draw(message_texts(), label="text"))
        if not refused:  # the sender is in the audience: something was enqueued
            assert self.worker.crashes == crashes + 1, "the armed crash did not happen"
        self.worker.armed = 0


@pytest.fixture
def quick_throttle_retries() -> Iterator[None]:
    with short_throttle_backoff(), RETRY_QUOTAS.active():
        yield


@pytest.mark.usefixtures("quick_throttle_retries")
@pytest.mark.parametrize("backend", PROPERTY_BACKENDS, indirect=True)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_the_promise_holds_under_faults(
    make_harness: Callable[..., Harness], strategy: str
) -> None:
    machine = machine_for(make_harness(strategy), FaultyMachine)
    assert issubclass(machine, FaultyMachine)
    answered: Counter[str] = Counter()
    machine.answered = answered
    run_and_check_steps(machine, machine_settings(FAULT_EXAMPLES))
    # Every strategy calls all seven: Query on a disconnect or ping, Scan in a sweep.
    missed = [op for op in DYNAMO_OPERATIONS if answered[op] == 0]
    assert not missed, f"armed but never answered: {missed}; answered {dict(answered)}"


# -- faults that outlast the retries -----------------------------------------------------


@pytest.fixture
def chat(backend: Backend, local_api: LocalManagementApi, clock: FakeClock) -> Iterator[Chat]:
    with short_throttle_backoff(), RETRY_QUOTAS.active():
        yield make_chat(backend, local_api, clock, "gsi_query")


def table(chat: Chat) -> list[dict[str, Any]]:
    return sorted((row.serialize() for row in chat.runtime.store.rows()), key=str)


def store_faults(chat: Chat) -> DynamoFaults:
    return DynamoFaults(chat.runtime.store)


@pytest.mark.parametrize("backend", PROPERTY_BACKENDS, indirect=True)
@pytest.mark.parametrize(
    ("code", "status", "answer"),
    [(THROTTLE, 400, (503, "throttled")), ("InternalServerError", 500, (500, "internal_error"))],
)
def test_connect_failing_after_its_write_landed_is_rolled_back(
    chat: Chat, code: str, status: int, answer: tuple[int, str]
) -> None:
    """The rows are written, then DynamoDB answers an error: the rollback must delete them.

    A fault answered before the write would leave nothing to roll back, and prove nothing.
    """
    faults = store_faults(chat)
    faults.add("BatchWriteItem", times=100, code=code, status=status, after=True)
    cid = chat.api.connections.open()
    response = handlers.connect(connect_event(cid, rooms=["r", "s"]), None)
    faults.close()
    assert faults.executed["BatchWriteItem"] >= 1, "no write landed before the error"
    assert error_of(response) == answer
    assert table(chat) == []


@pytest.mark.parametrize("backend", PROPERTY_BACKENDS, indirect=True)
@pytest.mark.parametrize(
    ("operation", "body"),
    [
        ("PutItem", {"action": "joinRoom", "room": "s"}),
        ("DeleteItem", {"action": "leaveRoom", "room": "r"}),
        ("UpdateItem", {"action": "ping"}),
        ("GetItem", {"action": "sendMessage", "room": "r", "text": "x"}),
    ],
)
def test_outlasting_throttle_is_503_and_changes_nothing(
    chat: Chat, operation: str, body: dict[str, Any]
) -> None:
    a = chat.connect(rooms=["r"])
    before = table(chat)
    faults = store_faults(chat)
    faults.add(operation, times=100)
    response = chat.call(a, body)
    faults.close()
    assert error_of(response) == (503, "throttled")
    assert table(chat) == before
    assert chat.api.total("POST") == 0


@pytest.mark.parametrize("backend", PROPERTY_BACKENDS, indirect=True)
def test_410_cleanup_that_outlasts_a_throttle_is_retried_by_the_next_410(chat: Chat) -> None:
    """The gone row stays (a retryable failure, nothing wrong deleted) until the next 410."""
    a = chat.connect(rooms=["r"])
    b = chat.connect(rooms=["r"])
    chat.drop(b)
    strategy = strategy_class("gsi_query")(
        chat.runtime.store, chat.runtime.deliverer, chat.runtime.config
    )
    faults = store_faults(chat)
    faults.add("DeleteItem", times=100)
    result = strategy.fanout(outgoing(Message(a, "one", "r")))
    faults.close()
    assert (result.delivered, result.gone, result.failed_retryable) == (1, 0, 1)
    assert result.failures[0].connection_id == b
    assert chat.row_ids() == {a, b}
    assert chat.send(a, "two", room="r") == {"statusCode": 200}
    assert chat.row_ids() == {a}
    assert chat.texts(a) == ["one", "two"]


@pytest.mark.parametrize("backend", PROPERTY_BACKENDS, indirect=True)
def test_read_throttle_outlasting_retries_is_503(chat: Chat) -> None:
    a = chat.connect(rooms=["r"])
    faults = store_faults(chat)
    faults.add("Query", times=100)
    response = chat.send(a, "lost", room="r")
    faults.close()
    assert error_of(response) == (503, "throttled")
    assert chat.texts(a) == []


@pytest.mark.parametrize("backend", PROPERTY_BACKENDS, indirect=True)
def test_post_faults_outlasting_attempts_fail_without_deleting(
    store: ConnectionStore, local_api: LocalManagementApi
) -> None:
    """429, 500 and timeouts past FANOUT_MAX_ATTEMPTS: a retryable failure, never a delete."""
    from fanout_core.delivery.posting import BotoPoster

    endpoint = "https://abcd123.execute-api.us-east-1.amazonaws.com/prod"
    ids = [local_api.connections.open() for _ in range(3)]
    for cid in ids:
        store.connect(cid, endpoint, rooms=["r"])
    poster = BotoPoster(override=f"{local_api.url}/prod", timeout=POST_TIMEOUT)
    deliverer = Deliverer(
        poster,
        on_gone=store.disconnect,
        concurrency=3,
        backoff=Backoff(attempts=2),
        sleep=lambda s: None,
    )
    local_api.faults.add(429, connection_id=ids[0], times=2)
    local_api.faults.add(500, connection_id=ids[1], times=2)
    local_api.faults.add(0, connection_id=ids[2], times=2, hang_seconds=HANG)
    try:
        result = strategy_class("gsi_query")(store, deliverer, store.config).fanout(
            outgoing(Message(ids[0], "x", "r"))
        )
    finally:
        deliverer.close()
    assert (result.delivered, result.gone, result.failed, result.failed_retryable) == (0, 0, 3, 3)
    assert {row.connection_id for row in store.rows()} == set(ids)
    assert all(local_api.connections.inbox(cid) == [] for cid in ids)


@pytest.mark.parametrize("backend", PROPERTY_BACKENDS, indirect=True)
def test_sqs_worker_crash_redelivers_and_every_member_gets_the_frame(
    backend: Backend, local_api: LocalManagementApi, clock: FakeClock, moto_server_url: str
) -> None:
    """A worker crash mid-batch: the batch comes back, nobody misses, duplicates share an id."""
    chat = make_chat(backend, local_api, clock, "sqs_batched", sqs_endpoint=moto_server_url)
    strategy = chat.runtime.strategy
    assert isinstance(strategy, SqsBatched)
    strategy.targets_per_message = 1
    assert chat.runtime.tasks is not None
    chat.runtime.tasks.inline = chat.runtime.tasks.per_message = 1  # a page: 1 posted, 1 on
    queue_url = chat.runtime.config.queue_url
    assert queue_url is not None
    client = boto3.client("sqs", region_name="us-east-1", endpoint_url=moto_server_url)
    client.set_queue_attributes(QueueUrl=queue_url, Attributes={"VisibilityTimeout": "0"})
    worker = CrashingWorker(handlers.sqs_worker)
    chat.pump = SqsEventSource(client, queue_url, worker)
    members = [chat.connect(rooms=["r"]) for _ in range(4)]
    worker.arm(after=2)
    assert chat.send(members[0], "hi", room="r") == {"statusCode": 200}
    assert worker.crashes == 1
    counts = {cid: len(chat.texts(cid)) for cid in members}
    # Every member at least once; the crash's batch came back whole, so what its records had
    # done was done again (a read task's page and continuation too): once more at most.
    assert all(1 <= n <= 2 for n in counts.values()), counts
    assert sum(counts.values()) > 4, counts
    assert len({f["id"] for cid in members for f in chat.frames(cid)}) == 1
    assert chat.row_ids() == set(members)
