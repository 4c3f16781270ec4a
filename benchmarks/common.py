"""What the benchmark modules share: ids and rooms, the servers they run in processes of their
own, a table loader in the library's exact layout, and this process's CPU time.

Every benchmark imports this module and the library; it imports no benchmark.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from fanout_core import sizes
from fanout_core.config import FanoutConfig

# Credentials for every client a benchmark builds against its local servers; set before the
# first one is built (a value the caller already set is kept).
for _name, _value in (
    ("AWS_ACCESS_KEY_ID", "bench"),
    ("AWS_SECRET_ACCESS_KEY", "bench"),
    ("AWS_DEFAULT_REGION", "us-east-1"),
):
    os.environ.setdefault(_name, _value)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
ENDPOINT = "https://abcd123456.execute-api.us-east-1.amazonaws.com/prod"
LATENCY = 0.020  # seconds the local Management API takes to answer each post
BENCH_USER = "bench-user-0001"
BENCH_USER_CONNECTIONS = 3  # the first connections of a loaded table belong to BENCH_USER


def bench_id(i: int) -> str:
    """The i-th connection id: 16 characters, like API Gateway's."""
    return f"bench{i:010d}="


def room_name(room_size: int, index: int) -> str:
    """The index-th room of a table whose rooms have ``room_size`` members."""
    return f"k{room_size}-{index:06d}"


def cpu_seconds() -> float:
    """This process's CPU time so far, user and system, every thread."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- servers in processes of their own -------------------------------------------------------


@dataclass(frozen=True)
class Served:
    """A server process of ``server`` and the URL it printed."""

    process: subprocess.Popen[str]
    url: str


@contextlib.contextmanager
def server(module: str, *args: str) -> Iterator[Served]:
    """``python -m module args``, which prints its URL and then answers a command per stdin
    line (``ask``)."""
    process = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        yield Served(process, process.stdout.readline().strip())
    finally:
        process.stdin.close()
        process.wait(30)


def management_api(
    latency: float, count: int, *options: str
) -> contextlib.AbstractContextManager[Served]:
    """``benchmarks.mgmt_server`` with ``count`` open ids."""
    return server("benchmarks.mgmt_server", str(latency), str(count), *options)


def ask(served: Served, command: str) -> Any:
    """Send a ``server`` a command; its answer, a line of JSON."""
    stdin, stdout = served.process.stdin, served.process.stdout
    assert stdin is not None
    assert stdout is not None
    stdin.write(command + "\n")
    stdin.flush()
    return json.loads(stdout.readline())


# -- loading tables fast, in the library's exact layout ---------------------------------------


def attribute_values(item: dict[str, str | int]) -> dict[str, dict[str, str]]:
    return {k: ({"N": str(v)} if isinstance(v, int) else {"S": v}) for k, v in item.items()}


def bench_items(i: int, room_size: int, now: float, ttl: int) -> list[dict[str, str | int]]:
    """The items of the i-th loaded connection: its row and its room's membership."""
    return sizes.layout_items(
        bench_id(i),
        ENDPOINT,
        rooms=(room_name(room_size, i // room_size),),
        expires_at=int(now) + ttl,
        connected_at_ms=int(now * 1000),
        # The first few connections belong to one user: a publish to it reads its partition.
        principal=BENCH_USER if i < BENCH_USER_CONNECTIONS else None,
    )


def check_layout(config: FanoutConfig) -> None:
    """The loader's items are exactly what ConnectionStore.connect writes."""
    from fanout_core.store import ConnectionStore

    now = 1_700_000_000.25
    store = ConnectionStore(config, clock=lambda: now)
    store.connect(bench_id(7), ENDPOINT, rooms=[room_name(10, 0)])
    client = ddb_client(config)
    stored = client.scan(TableName=config.table, ConsistentRead=True)["Items"]
    expected = [attribute_values(item) for item in bench_items(7, 10, now, config.ttl_seconds)]
    key = lambda item: (item["pk"]["S"], item["sk"]["S"])  # noqa: E731
    if sorted(stored, key=key) != sorted(expected, key=key):
        raise SystemExit(f"the loader's layout differs from the library's:\n{stored}\n{expected}")
    store.disconnect(bench_id(7))


def ddb_client(config: FanoutConfig) -> Any:
    """A DynamoDB client of its own (16 connections) on the config's endpoint."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "dynamodb",
        endpoint_url=config.dynamodb_endpoint,
        region_name="us-east-1",
        config=Config(max_pool_connections=16),
    )


def load(config: FanoutConfig, connections: int, room_size: int, threads: int = 6) -> float:
    """BatchWriteItem, 25 items a call, from several threads; returns seconds."""
    client = ddb_client(config)
    now = time.time()

    def chunks() -> Iterator[list[dict[str, Any]]]:
        batch: list[dict[str, Any]] = []
        for i in range(connections):
            for item in bench_items(i, room_size, now, config.ttl_seconds):
                batch.append({"PutRequest": {"Item": attribute_values(item)}})
                if len(batch) == 25:
                    yield batch
                    batch = []
        if batch:
            yield batch

    def write(batch: list[dict[str, Any]]) -> None:
        requests = {config.table: batch}
        while requests:
            requests = client.batch_write_item(RequestItems=requests).get("UnprocessedItems")

    started = time.perf_counter()
    errors: list[BaseException] = []
    slots = threading.BoundedSemaphore(4 * threads)  # Executor.map would queue every batch

    def done(future: Future[None]) -> None:
        if future.exception() is not None:
            errors.append(cast(BaseException, future.exception()))
        slots.release()

    with ThreadPoolExecutor(threads) as pool:
        for batch in chunks():
            slots.acquire()
            pool.submit(write, batch).add_done_callback(done)
    if errors:
        raise errors[0]
    return time.perf_counter() - started
