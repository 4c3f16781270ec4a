"""sqs_batched: batch packing, the worker's partial-batch answer, redelivery after a failure."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fanout_core.audience import Audience
from fanout_core.local.management_api import LocalManagementApi
from fanout_core.message import MAX_PAYLOAD_BYTES, Message
from fanout_core.queue import MAX_BYTES_PER_CALL, Batch, ReadTask, decode
from fanout_core.ranges import KeyRange
from fanout_core.result import FanoutResult
from fanout_core.store import Page, Target
from fanout_core.worker import TaskRunner
from tests.support.backends import Backend
from tests.support.clock import FakeClock
from tests.support.harness import Chat, make_chat
from tests.support.strategy_classes import SqsBatched

ENDPOINT = "https://abcd123.execute-api.us-east-1.amazonaws.com/prod"


class RecordingSqs:
    """Records SendMessageBatch calls; accepts everything (a unit-test stand-in)."""

    def __init__(self) -> None:
        self.calls: list[list[dict[str, str]]] = []

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:
        self.calls.append(Entries)
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}


def enqueue(n: int, text: str, per_message: int = 100) -> tuple[RecordingSqs, FanoutResult]:
    client = RecordingSqs()
    config = Backend("moto", None).config(queue_url="https://sqs.example/1/q")
    strategy = SqsBatched(None, None, config, client=client, targets_per_message=per_message)  # type: ignore[arg-type]
    pages = iter(
        [
            Page(tuple(Target(f"c{p}-{i}", ENDPOINT) for i in range(n // 10)), n // 10, None)
            for p in range(10)
        ]
    )
    result = FanoutResult("sqs_batched", None, "m")
    strategy.dispatch(pages, Message("s", text).frame(), result)
    return client, result


def test_batches_respect_sqs_limits_and_store_the_frame_once_per_message() -> None:
    client, result = enqueue(2345 // 10 * 10, "hello")
    ids = [
        cid for call in client.calls for e in call for cid in json.loads(e["MessageBody"])["ids"]
    ]
    assert len(ids) == len(set(ids)) == 2340 == result.enqueued
    for call in client.calls:
        assert 1 <= len(call) <= 10
        assert sum(len(e["MessageBody"].encode()) for e in call) <= MAX_BYTES_PER_CALL
        assert len({e["Id"] for e in call}) == len(call)
    messages = [e for call in client.calls for e in call]
    assert result.queue_messages == len(messages) == 24  # ceil(2340 / 100)
    assert all(e["MessageBody"].count('"frame64"') == 1 for e in messages)


def test_large_frames_split_calls_under_the_byte_limit() -> None:
    text = "z" * (MAX_PAYLOAD_BYTES - 200)
    client, result = enqueue(500, text, per_message=50)
    assert result.enqueued == 500
    for call in client.calls:
        assert sum(len(e["MessageBody"].encode()) for e in call) <= MAX_BYTES_PER_CALL
        assert len(call) == 1  # one 128 KB frame per call leaves no room for a second


def test_missing_queue_url_is_a_config_error() -> None:
    config = Backend("moto", None).config()
    strategy = SqsBatched(None, None, config, client=RecordingSqs())  # type: ignore[arg-type]
    with pytest.raises(Exception, match="FANOUT_QUEUE_URL"):
        strategy.dispatch(iter([]), b"{}", FanoutResult("sqs_batched", None, "m"))


def test_batch_round_trip() -> None:
    batch = Batch(Message("s", "héllo ✓").frame(), ENDPOINT, ("a", "b"))
    assert Batch.decode(batch.encode()) == batch
    for bad in ('{"v": 1, "frame": 3, "endpoint": "x", "ids": []}', "[]", '{"v": 1}'):
        with pytest.raises(ValueError, match=r"fanout batch|must be"):
            Batch.decode(bad)


@pytest.fixture
def sqs_chat(
    backend: Backend, local_api: LocalManagementApi, clock: FakeClock, moto_server_url: str
) -> Chat:
    return make_chat(backend, local_api, clock, "sqs_batched", sqs_endpoint=moto_server_url)


def test_a_failing_post_is_requeued_alone_and_nobody_gets_a_copy_twice(
    sqs_chat: Chat,
) -> None:
    chat = sqs_chat
    assert chat.pump is not None
    assert chat.runtime.tasks is not None
    chat.runtime.tasks.inline = chat.runtime.tasks.per_message = 2
    members = [chat.connect(rooms=["r"]) for _ in range(6)]
    slow = members[3]
    # Every attempt of one invocation, then one more: the requeued batch's first post too.
    chat.api.faults.add(429, connection_id=slow, times=chat.runtime.config.max_attempts + 1)
    chat.send(members[0], "hello", room="r")  # drains: the requeued batch comes back at once
    assert chat.pump.failed == 0  # no record was redelivered
    assert [chat.texts(cid) for cid in members] == [["hello"]] * 6
    assert chat.api.faults.pending() == 0


def test_a_post_failing_past_every_requeue_fails_its_record(sqs_chat: Chat) -> None:
    chat = sqs_chat
    assert chat.pump is not None
    a, b = chat.connect(rooms=["r"]), chat.connect(rooms=["r"])
    chat.api.faults.add(500, connection_id=b, times=10_000)
    chat.send(a, "hello", room="r")
    # Requeued MAX_ATTEMPTS - 1 times; then the last batch's record fails (its redrive
    # policy sends it to the dead-letter queue); a got its one copy.
    assert chat.pump.failed == 1
    assert (chat.texts(a), chat.texts(b)) == (["hello"], [])
    chat.api.faults.clear()
    assert chat.pump.release_failed() == 1
    chat.pump.drain()
    assert (chat.texts(a), chat.texts(b)) == (["hello"], ["hello"])


def test_worker_cleans_up_gone_connections(sqs_chat: Chat) -> None:
    chat = sqs_chat
    a = chat.connect(rooms=["r"])
    b = chat.connect(rooms=["r"])
    chat.drop(b)
    chat.send(a, "x", room="r")
    assert chat.texts(a) == ["x"]
    assert chat.row_ids() == {a}
    assert chat.pump is not None
    assert chat.pump.failed == 0  # a 410 is done, not retried


# -- the fan-out tree ----------------------------------------------------------------------


def bodies(client: RecordingSqs) -> list[Any]:
    return [decode(e["MessageBody"]) for call in client.calls for e in call]


def test_the_sender_enqueues_one_read_task_per_partition_and_reads_nothing() -> None:
    client = RecordingSqs()
    config = Backend("moto", None).config(queue_url="https://sqs.example/1/q")
    strategy = SqsBatched(None, None, config, client=client)  # type: ignore[arg-type]
    frame = Message(None, room="r").frame()
    for audience, expected in (
        (Audience(room="r", exclude=frozenset({"x"})), ["ROOM#r"]),
        (Audience(user="alice"), ["USER#alice"]),
        (Audience(), [f"ALL#{shard:02d}" for shard in range(16)]),
    ):
        client.calls.clear()
        result = FanoutResult("sqs_batched", None, "m")
        strategy.run(audience, frame, result)  # no store: it would raise on a read
        tasks = bodies(client)
        assert [t.partition for t in tasks] == expected
        assert all(isinstance(t, ReadTask) and t.start is None for t in tasks)
        assert all(t.frame == frame and t.exclude == tuple(audience.exclude) for t in tasks)
        assert (result.queue_messages, result.enqueued, result.dynamodb_requests) == (
            len(expected),
            0,
            0,
        )


def test_message_bodies_round_trip_and_refuse_what_is_not_ours() -> None:
    frame = b'{"quote":"\\"\\"\\""}'
    task = ReadTask(frame, "ROOM#r", {"pk": {"S": "x"}}, ("a",), 3)
    assert decode(task.encode()) == task
    ranged = ReadTask(frame, "ALL#03", None, (), 1, KeyRange("CONN#A", "CONN#~"))
    assert decode(ranged.encode()) == ranged
    # A worker that predates ranges accepts versions 1 and 2 only: it refuses a ranged task
    # rather than read the whole partition from the range's start.
    assert (json.loads(task.encode())["v"], json.loads(ranged.encode())["v"]) == (2, 3)
    for bad_range in (
        ["CONN#b", "CONN#A"],
        ["ROOM#a", "CONN#b"],
        ["CONN#a", "CONN#a#b"],
        ["CONN#a", "CONN#" + "b" * 200],
        ["CONN#a"],
        "CONN#a",
        [1, 2],
    ):
        body = json.loads(ranged.encode())
        body["range"] = bad_range
        with pytest.raises(ValueError, match="range"):
            decode(json.dumps(body))
    assert decode(Batch(frame, ENDPOINT, ("a",), 2).encode()) == Batch(frame, ENDPOINT, ("a",), 2)
    v1 = json.dumps({"v": 1, "frame": "{}", "endpoint": ENDPOINT, "ids": ["a"]})
    assert decode(v1) == Batch(b"{}", ENDPOINT, ("a",))  # bodies already queued still work
    big = Message(None, data='"' * (MAX_PAYLOAD_BYTES // 2 - 200)).frame()  # all escapes
    # As a JSON string (version 1) it would be over what one SendMessageBatch call may carry.
    assert len(json.dumps(big.decode())) > MAX_BYTES_PER_CALL
    assert len(ReadTask(big, "ALL#00").encode().encode()) < MAX_BYTES_PER_CALL
    assert len(Batch(big, ENDPOINT, ("a",) * 100).encode().encode()) < MAX_BYTES_PER_CALL
    for bad_partition in ("CONN#x", "ROOM#a#b", "ALL#16", "ALL#1", "USER#", 5):
        body = json.loads(task.encode())
        body["partition"] = bad_partition
        with pytest.raises(ValueError, match=r"partition|room|principal|shard"):
            decode(json.dumps(body))
    for field, value in (("start", 5), ("depth", -1), ("exclude", "a"), ("kind", "x")):
        body = json.loads(task.encode())
        body[field] = value
        with pytest.raises(ValueError, match=field):
            decode(json.dumps(body))
    with pytest.raises(ValueError, match="frame64"):
        decode(json.dumps({**json.loads(task.encode()), "frame64": "%%%"}))


def room_with_a_dropped_member(
    chat: Chat, size: int, *, gone_at: int, page_size: int, inline: int
) -> tuple[TaskRunner, list[str], str]:
    """``size`` members of room "r" read in pages of ``page_size``; the one at ``gone_at``
    dropped unannounced."""
    assert chat.runtime.tasks is not None
    tasks = chat.runtime.tasks
    tasks.page_size, tasks.inline, tasks.per_message = page_size, inline, inline
    members = [chat.connect(rooms=["r"]) for _ in range(size)]
    gone = members[gone_at]
    chat.drop(gone)
    return tasks, members, gone


def assert_each_live_member_got_it_once(chat: Chat, members: list[str], gone: str) -> None:
    """The send of "hi": every live member once, the dropped one deleted, no record failed."""
    assert chat.pump is not None
    for cid in members:
        assert chat.texts(cid) == ([] if cid == gone else ["hi"]), cid
    assert gone not in chat.row_ids()
    assert chat.pump.failed == 0


def test_workers_read_a_page_each_and_reach_every_member_once(
    sqs_chat: Chat, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat = sqs_chat
    tasks, members, gone = room_with_a_dropped_member(chat, 8, gone_at=5, page_size=3, inline=1)
    pages: list[int] = []
    read_page = tasks.store.partition_page

    def recording(*args: Any, **kwargs: Any) -> tuple[Page, dict[str, Any] | None]:
        page, start = read_page(*args, **kwargs)
        pages.append(len(page.targets))
        return page, start

    monkeypatch.setattr(tasks.store, "partition_page", recording)
    chat.send(members[0], "hi", room="r")
    assert_each_live_member_got_it_once(chat, members, gone)
    # 8 members in pages of 3, each member read once: at least 3 read tasks, more when the
    # first page cuts the rest into key ranges or the backend ends a full last page with a
    # LastEvaluatedKey (dynalite). Not counted in invocations: the pump hands a worker up to
    # 10 records at once, so the range tasks and post batches of the first page can all
    # arrive in one invocation.
    assert all(size <= 3 for size in pages), pages
    assert (sum(pages), len(pages) >= 3) == (8, True), pages


def test_a_partition_of_many_pages_is_read_by_several_chains_and_reaches_everyone_once(
    sqs_chat: Chat,
) -> None:
    chat = sqs_chat
    tasks, members, gone = room_with_a_dropped_member(chat, 60, gone_at=7, page_size=4, inline=4)
    read: list[ReadTask] = []
    run = tasks.run

    def recording(task: ReadTask, *args: Any) -> None:
        read.append(task)
        run(task, *args)

    tasks.run = recording  # type: ignore[method-assign,assignment]
    chat.send(members[0], "hi", room="r")
    assert_each_live_member_got_it_once(chat, members, gone)
    ranges = {task.key_range for task in read if task.key_range is not None}
    # 60 members in pages of 4: the first page splits the other 56 into several ranges
    # (as many as 4 random ids let it guess), each its own chain, none splitting again.
    assert 3 <= len(ranges) <= 16, ranges
    assert sum(1 for task in read if task.key_range is None) == 1
    longest = max(task.depth for task in read)
    assert longest < 10, [task.depth for task in read]  # one chain: 15 pages deep


def test_the_strategy_batches_as_the_queue_does() -> None:
    """sqs_batched keeps its own copy of the batch size (it loads without the queue module)."""
    from fanout_core import queue
    from strategies import sqs_batched

    assert sqs_batched.TARGETS_PER_MESSAGE == queue.TARGETS_PER_MESSAGE


def test_a_worker_runs_the_tree_whatever_its_strategy_when_a_queue_is_set() -> None:
    """A sqs_worker deployed without FANOUT_STRATEGY=sqs_batched still reads the tree's tasks."""
    from fanout_core.runtime import build_runtime
    from fanout_core.worker import TaskRunner

    queued = Backend("moto", None).config(queue_url="http://127.0.0.1:9/q", strategy="gsi_query")
    runtime = build_runtime(queued)
    assert runtime.strategy.task_runner() is None
    assert isinstance(runtime.tasks, TaskRunner)
    assert runtime.tasks is runtime.tasks  # built once
    assert build_runtime(Backend("moto", None).config(strategy="gsi_query")).tasks is None
