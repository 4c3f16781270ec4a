"""The posting rate: the token bucket, the adaptive window, the account's 429s and the cap."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from fanout_core.delivery import Backoff, Deliverer
from fanout_core.delivery.http_poster import AsyncHttpPoster
from fanout_core.delivery.rate import AdaptiveWindow, TokenBucket
from fanout_core.local.management_api import LocalManagementApi
from fanout_core.result import FanoutResult
from fanout_core.store import Target
from tests.support.backends import Backend
from tests.support.clock import FakeClock
from tests.support.harness import make_chat


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_token_bucket_gives_its_burst_then_its_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(10, burst=5, clock=clock)
    assert [bucket.take() for _ in range(6)] == [True] * 5 + [False]
    clock.now += 0.25  # 2.5 tokens
    assert [bucket.take() for _ in range(3)] == [True, True, False]
    clock.now += 100  # never more than the burst saved up
    assert sum(bucket.take() for _ in range(10)) == 5
    assert bucket.wait() == pytest.approx(0.1)  # reserved: the next token in 1/rate s
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(0)


def test_the_window_halves_once_per_round_and_grows_by_one_per_window() -> None:
    async def scenario() -> None:
        window = AdaptiveWindow(16)
        rounds = [await window.acquire() for _ in range(16)]
        assert window.in_flight == 16
        window.release(rounds[0], throttled=True)
        assert (window.window, window.decreases) == (8.0, 1)
        window.release(rounds[1], throttled=True)  # started before the cut: the same load
        assert (window.window, window.decreases) == (8.0, 1)
        blocked = asyncio.ensure_future(window.acquire())
        await asyncio.sleep(0)
        assert not blocked.done()  # 14 in flight, window 8
        for started in rounds[2:8]:
            window.release(started, throttled=False)
        await asyncio.sleep(0)
        assert not blocked.done()  # 8 in flight
        window.release(rounds[8], throttled=False)
        after = await asyncio.wait_for(blocked, 1)  # 7 in flight: room for it
        assert window.window == pytest.approx(8 + sum(1 / w for w in _growth(8.0, 7)))
        window.release(after, throttled=True)  # started after the cut: a new round's 429
        assert window.decreases == 2
        for started in rounds[9:]:
            window.release(started, throttled=False)
        assert window.in_flight == 0
        for _ in range(100):
            window.release(await window.acquire(), throttled=False)
        assert window.window <= 16  # never past the ceiling
        floor = AdaptiveWindow(1)
        floor.release(await floor.acquire(), throttled=True)
        assert floor.window == 1.0  # never below one post

    asyncio.run(scenario())


def _growth(start: float, steps: int) -> list[float]:
    sizes, window = [], start
    for _ in range(steps):
        sizes.append(window)
        window += 1 / window
    return sizes


def test_a_fixed_window_never_moves() -> None:
    async def scenario() -> None:
        window = AdaptiveWindow(4, adaptive=False)
        window.release(await window.acquire(), throttled=True)
        assert (window.window, window.decreases) == (4.0, 0)

    asyncio.run(scenario())


@pytest.fixture
def throttled_api() -> Iterator[LocalManagementApi]:
    with LocalManagementApi() as api:
        yield api


def deliver(
    api: LocalManagementApi, targets: list[Target], **options: Any
) -> tuple[FanoutResult, int]:
    """One fan-out to ``targets``; its counts, and how often its window was halved."""
    poster = AsyncHttpPoster(override=f"{api.url}/prod", region="us-east-1")
    deliverer = Deliverer(poster, concurrency=32, **options)
    result = FanoutResult("test", None, "m")
    try:
        deliverer.deliver_targets(targets, json.dumps({"id": "m"}).encode(), result)
        decreases = deliverer.window.decreases if deliverer.window is not None else 0
    finally:
        deliverer.close()
        poster.close()
    return result, decreases


def test_the_local_account_limit_answers_429_past_its_bucket(
    throttled_api: LocalManagementApi,
) -> None:
    api = throttled_api
    ids = [api.connections.open() for _ in range(40)]
    api.faults.account_limit(5, burst=10)
    targets = [Target(cid, "https://x/prod") for cid in ids]
    result, decreases = deliver(api, targets, backoff=Backoff(attempts=1), adaptive=False)
    assert decreases == 0
    assert 10 <= result.delivered < 20  # the burst, and what 5/s refilled meanwhile
    assert "LimitExceededException" in result.failure_reasons.most_common(1)[0][0]
    assert api.faults.account_throttled == result.failed
    assert api.total("POST", 429) == result.failed


def test_the_adaptive_window_backs_off_and_delivers_everything(
    throttled_api: LocalManagementApi,
) -> None:
    api = throttled_api
    ids = [api.connections.open() for _ in range(150)]
    api.faults.account_limit(300, burst=20)
    targets = [Target(cid, "https://x/prod") for cid in ids]
    result, decreases = deliver(api, targets, backoff=Backoff(attempts=20, base=0.01, cap=0.2))
    assert (result.delivered, result.failed) == (150, 0)
    assert result.throttled > 0  # it met the limit, and halved its window for it
    assert decreases >= 1
    assert sorted(len(api.connections.inbox(cid)) for cid in ids) == [1] * 150  # once each


def test_the_cap_keeps_a_fan_out_under_the_account_limit(
    throttled_api: LocalManagementApi,
) -> None:
    api = throttled_api
    ids = [api.connections.open() for _ in range(60)]
    api.faults.account_limit(400, burst=40)  # past the cap's own burst of 10, bunched or not
    targets = [Target(cid, "https://x/prod") for cid in ids]
    result, _ = deliver(api, targets, backoff=Backoff(attempts=1), max_posts_per_second=100)
    assert (result.delivered, result.throttled, api.faults.account_throttled) == (60, 0, 0)


@pytest.mark.parametrize("strategy", ["gsi_query", "full_scan", "parallel_scan", "sqs_batched"])
def test_every_strategy_delivers_everything_once_through_the_account_limit(
    backend: Backend,
    local_api: LocalManagementApi,
    clock: FakeClock,
    request: pytest.FixtureRequest,
    strategy: str,
) -> None:
    sqs = request.getfixturevalue("moto_server_url") if strategy == "sqs_batched" else None
    if backend.endpoint is None:
        sqs = None  # in-process moto serves the queue too
    chat = make_chat(
        backend,
        local_api,
        clock,
        strategy,
        sqs_endpoint=sqs,
        concurrency=16,
        max_attempts=8,
        page_size=100,  # the whole room at once: 16 posts in flight from the start
    )
    members = [chat.connect(rooms=["r"]) for _ in range(40)]
    # 16 posts in flight for 20 ms each ask ~800 a second of an account that allows 50.
    local_api.faults.latency = 0.02
    local_api.faults.account_limit(50, burst=2)
    chat.send(members[0], "hello", room="r")
    local_api.faults.account_limit(None)
    local_api.faults.latency = 0
    assert local_api.faults.account_throttled > 0  # the fan-out met the limit
    assert [chat.texts(cid) for cid in members] == [["hello"]] * 40  # and got through, once
    assert chat.row_ids() == set(members)
