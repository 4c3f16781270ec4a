"""The one retry policy: full jitter under a cap, the same for every retry loop."""

from __future__ import annotations

import asyncio
import random

import pytest

from fanout_core.delivery import Backoff
from fanout_core.delivery.backoff import pause
from fanout_core.queue import Batch, BatchSender
from fanout_core.result import FanoutResult


def test_delays_are_attempts_minus_one_each_under_its_ceiling() -> None:
    random.seed(7)
    backoff = Backoff(attempts=6, base=0.1, cap=0.5)
    for _ in range(200):
        delays = list(backoff.delays())
        assert len(delays) == 5
        for retry, delay in enumerate(delays, start=1):
            assert 0 <= delay <= min(0.5, 0.1 * 2 ** (retry - 1))
    # Full jitter: the waits spread over the whole range, not around its top.
    late = [backoff.delay(5) for _ in range(2000)]
    assert min(late) < 0.05
    assert max(late) > 0.45


def test_one_attempt_means_no_retry() -> None:
    assert list(Backoff(attempts=1).delays()) == []
    with pytest.raises(ValueError, match="attempts"):
        Backoff(attempts=0)


def test_pause_runs_sync_and_async_sleeps() -> None:
    slept: list[float] = []

    async def async_sleep(seconds: float) -> None:
        slept.append(-seconds)

    asyncio.run(pause(slept.append, 0.25))
    asyncio.run(pause(async_sleep, 0.5))
    assert slept == [0.25, -0.5]


def test_until_done_calls_again_on_what_is_left_then_gives_up() -> None:
    slept: list[float] = []
    calls: list[list[int]] = []

    def step(pending: list[int]) -> list[int]:
        calls.append(pending)
        return pending[1:]

    Backoff(attempts=5).until_done(step, [1, 2, 3], gave_up=RuntimeError, sleep=slept.append)
    assert calls == [[1, 2, 3], [2, 3], [3]]
    assert len(slept) == 2  # a wait before each call after the first
    calls.clear()
    with pytest.raises(RuntimeError) as raised:
        Backoff(attempts=2).until_done(step, [1, 2, 3], gave_up=RuntimeError, sleep=slept.append)
    assert calls == [[1, 2, 3], [2, 3]]
    assert raised.value.args == ([3],)  # what was left, for the error to name
    nothing: list[int] = []
    Backoff().until_done(step, nothing, gave_up=RuntimeError, sleep=slept.append)
    assert len(calls) == 2  # nothing pending: no call


class RefusingSqs:
    """Fails every entry with a server fault (a retryable one)."""

    def __init__(self) -> None:
        self.calls = 0

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, object]:
        self.calls += 1
        return {
            "Successful": [],
            "Failed": [{"Id": e["Id"], "SenderFault": False, "Code": "500"} for e in Entries],
        }


def test_the_sqs_sender_retries_with_the_same_capped_policy() -> None:
    client = RefusingSqs()
    slept: list[float] = []
    backoff = Backoff(attempts=4, base=1.0, cap=1.5)
    sender = BatchSender(
        client,  # type: ignore[arg-type]
        "https://sqs.example/1/q",
        FanoutResult("sqs_batched", None, "m"),
        backoff=backoff,
        sleep=slept.append,
    )
    sender.add(Batch(b'{"id":"m"}', "https://x.example/prod", ("a", "b")))
    with pytest.raises(RuntimeError, match="did not take 1 messages after retries"):
        sender.flush()
    assert client.calls == 4
    assert len(slept) == 3
    assert all(0 <= s <= 1.5 for s in slept)  # capped: the old formula reached 0.05 * 2**4
