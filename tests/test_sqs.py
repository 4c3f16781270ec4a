"""sqs_batched: batch packing, the worker's partial-batch answer, redelivery after a failure."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fanout_core.local.management_api import LocalManagementApi
from fanout_core.message import MAX_PAYLOAD_BYTES, Message
from fanout_core.queue import MAX_BYTES_PER_CALL, Batch
from fanout_core.result import FanoutResult
from fanout_core.store import Page, Target
from strategies.sqs_batched import SqsBatched
from tests.support.backends import Backend
from tests.support.clock import FakeClock
from tests.support.harness import Chat, make_chat

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
    assert all(e["MessageBody"].count('"frame"') == 1 for e in messages)


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


def test_worker_reports_only_the_failed_record_and_redelivery_completes(
    backend: Backend, local_api: LocalManagementApi, clock: FakeClock, moto_server_url: str
) -> None:
    # A visibility timeout no slow run can outlast: the failed record must not come back
    # during the first drain; release_failed() then stands in for the timeout.
    chat = make_chat(
        backend,
        local_api,
        clock,
        "sqs_batched",
        sqs_endpoint=moto_server_url,
        visibility_timeout=300,
    )
    assert chat.pump is not None
    strategy = chat.runtime.strategy
    assert isinstance(strategy, SqsBatched)
    strategy.targets_per_message = 2
    members = [chat.connect(rooms=["r"]) for _ in range(6)]
    slow = members[3]
    chat.api.faults.add(429, connection_id=slow, times=chat.runtime.config.max_attempts)
    chat.send(members[0], "hello", room="r")  # drains once: one record fails
    assert chat.pump.failed == 1
    for cid in members:
        if cid != slow:
            assert chat.texts(cid) == ["hello"] or chat.texts(cid) == ["hello", "hello"]
    assert chat.texts(slow) == []
    assert chat.pump.release_failed() == 1
    chat.pump.drain()
    assert chat.texts(slow) == ["hello"]
    # Only the failed record's partner can have it twice; every frame has the same id.
    counts = [len(chat.texts(cid)) for cid in members]
    assert sum(counts) == 7
    assert len({f["id"] for cid in members for f in chat.frames(cid)}) == 1


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
