"""Scan against query on cost, time and scale; delivery throughput; memory; cold start.

``python -m benchmarks.run [--quick] [--backend dynalite|moto]`` (``make bench``,
``make bench-quick``) writes ``benchmarks/results/results.md``, ``results.json`` and PNG plots.
Every number in them comes from the run.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import boto3
from tqdm import tqdm  # type: ignore[import-untyped,unused-ignore]

from benchmarks import cold_fanout, cold_start, posting
from benchmarks.account_limit import measure_account_limit
from benchmarks.common import (
    BENCH_USER,
    BENCH_USER_CONNECTIONS,
    ENDPOINT,
    LATENCY,
    RESULTS,
    ROOT,
    ask,
    bench_id,
    bench_items,
    check_layout,
    cpu_seconds,
    installed_wheel,
    load,
    management_api,
    room_name,
)
from benchmarks.history import measure_history
from benchmarks.shards import extra_size, measure_send, measure_sender, measure_shards
from fanout_core import cost, sizes
from fanout_core.audience import Audience
from fanout_core.config import FanoutConfig
from fanout_core.delivery import Deliverer
from fanout_core.delivery.http_poster import AsyncHttpPoster
from fanout_core.delivery.posting import BotoPoster, Poster, management_client
from fanout_core.local import backends
from fanout_core.message import Message
from fanout_core.outgoing import outgoing
from fanout_core.result import FanoutResult
from fanout_core.runtime import Runtime, build_runtime
from fanout_core.store import ConnectionStore, Target
from fanout_core.table import create_table

if TYPE_CHECKING:  # at run time the class is fanout_core.strategies', through the registry
    from strategies.sqs_batched import SqsBatched

STRATEGIES = ("full_scan", "gsi_query", "parallel_scan", "sqs_batched")
DIRECT = ("full_scan", "gsi_query", "parallel_scan")
EVERYONE_WORKER_MAX = 10_000  # the tree's workers run here, one after another: keep it short


@dataclass(frozen=True)
class Plan:
    """What one run measures."""

    sizes: tuple[int, ...]
    room_sizes: tuple[int, ...]
    concurrencies: tuple[int, ...]
    e2e_concurrencies: tuple[int, ...]
    everyone_e2e_max: int
    memory_sizes: tuple[int, ...]
    throughput_seconds: float
    read_repeats: int  # reads timed per resolve row (the median; 1 s at most)
    history_resumes: tuple[int, ...]  # frames a member resumes in the history section


FULL = Plan((1_000, 10_000, 100_000), (10, 100, 1_000), (8, 32, 64, 128), (8, 64), 10_000,
            (10_000, 100_000), 2.0, 5, (10, 100))  # fmt: skip
QUICK = Plan((1_000,), (10, 100), (64,), (64,), 1_000, (1_000,), 0.6, 1, (10,))


# -- measurements ---------------------------------------------------------------------------


def runtime_for(config: FanoutConfig, strategy: str, poster: Poster | None = None) -> Runtime:
    return build_runtime(config, strategy=strategy, poster=poster)


def resolve(
    runtime: Runtime, audience: Audience, *, budget: float = 1.0, most: int = 5
) -> dict[str, Any]:
    """Read the audience only: pages, items, requests, read units, and the median seconds of
    up to ``most`` reads within ``budget`` seconds (a short read alone is mostly noise, and
    the simulator's check derives this machine from the shortest)."""
    times: list[float] = []
    while True:
        result = FanoutResult(runtime.strategy.name, audience.room, "resolve")
        started = time.perf_counter()
        for page in runtime.strategy.pages_of(audience):
            result.add_page(page)
        times.append(time.perf_counter() - started)
        if len(times) >= most or sum(times) >= budget:
            break
    return {
        "items_returned": result.items_returned,
        "items_scanned": result.items_scanned,
        "requests": result.dynamodb_requests,
        "read_units": result.read_units,
        "seconds": statistics.median(times),
        "reads": len(times),
    }


def fanout(runtime: Runtime, room: str | None) -> FanoutResult:
    return runtime.strategy.fanout(
        outgoing(Message(bench_id(0), "benchmark frame " + "x" * 64, room))
    )


class SqsCounter:
    """Counts SendMessageBatch calls of a client."""

    def __init__(self, client: Any) -> None:
        self.calls = 0
        client.meta.events.register("before-call.sqs.SendMessageBatch", self._count)

    def _count(self, **kwargs: Any) -> None:
        self.calls += 1


def throughput(api: str, concurrency: int, posts: int, path: str) -> dict[str, float]:
    """Posts per second and CPU per post, through one delivery path."""
    targets = [Target(bench_id(i), ENDPOINT) for i in range(posts)]
    data = b'{"id":"bench","body":"' + b"x" * 100 + b'"}'
    if path == "boto3 thread pool":
        client = management_client(f"{api}/prod", pool_size=concurrency)

        def post(target: Target) -> None:
            client.post_to_connection(ConnectionId=target.connection_id, Data=data)

        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(post, targets[:200]))
            cpu, started = cpu_seconds(), time.perf_counter()
            list(pool.map(post, targets))
            elapsed, cpu = time.perf_counter() - started, cpu_seconds() - cpu
        return {"posts_per_second": posts / elapsed, "cpu_ms_per_post": cpu / posts * 1000}
    poster: Poster
    if path == "library (AsyncHttpPoster)":
        poster = AsyncHttpPoster(override=f"{api}/prod", pool_size=concurrency)
    else:
        poster = BotoPoster(override=f"{api}/prod", pool_size=concurrency)
    deliverer = Deliverer(poster, concurrency=concurrency)  # no 410s here: nothing to delete
    try:
        deliverer.deliver_targets(targets[:200], data, FanoutResult("t", None, "warm"))
        result = FanoutResult("t", None, "m")
        cpu, started = cpu_seconds(), time.perf_counter()
        deliverer.deliver_targets(targets, data, result)
        elapsed, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    finally:
        deliverer.close()
        poster.close()
    if result.delivered != posts:
        raise SystemExit(f"{path}: {result.delivered} of {posts} delivered: {result.summary()}")
    return {"posts_per_second": posts / elapsed, "cpu_ms_per_post": cpu / posts * 1000}


def memory(endpoint: str, table: str, strategy: str, room: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory_probe", endpoint, table, strategy, room],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    return cast(dict[str, Any], json.loads(out.strip().splitlines()[-1]))


def machine() -> dict[str, str]:
    model = "unknown"
    with contextlib.suppress(Exception):
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    import botocore

    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "boto3": boto3.__version__,
        "botocore": botocore.__version__,
        "platform": platform.platform(),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip(),
    }


def cold(*, quick: bool) -> dict[str, Any]:
    """The cold-start sections, from one installed wheel."""
    with installed_wheel() as python:
        return {
            "cold_start": cold_start.measure_cold_start(
                python, cold_start.QUICK if quick else cold_start.FULL
            ),
            "cold_fanout": cold_fanout.measure_cold_fanout(
                python, cold_fanout.QUICK if quick else cold_fanout.FULL
            ),
        }


# -- the run --------------------------------------------------------------------------------


@contextlib.contextmanager
def dynamodb_backend(name: str) -> Iterator[str | None]:
    if name == "dynalite":
        with backends.dynalite() as url:
            yield url
    else:
        import moto

        with moto.mock_aws():
            yield None


def run(plan: Plan, backend: str, progress: tqdm[Any]) -> dict[str, Any]:
    results: dict[str, Any] = {
        "machine": machine(),
        "backend": backend,
        "plan": plan.__dict__,
        "latency_seconds": LATENCY,
        "throughput": [],
        "resolve": [],
        "delivery": [],
        "sqs": [],
        "memory": [],
        "loading": [],
        "history": [],
        "shards": [],
        "account_limit": [],
        "sender": [],
    }
    started = time.perf_counter()
    progress.set_description("cold start")
    results.update(cold(quick=plan == QUICK))
    progress.update()
    progress.set_description("posting: CPU per post")
    results["posting"] = posting.measure_posting(posting.QUICK if plan == QUICK else posting.FULL)
    progress.update()
    largest = max(plan.sizes)
    with management_api(LATENCY, largest) as api_process:
        api = api_process.url
        for concurrency in plan.concurrencies:
            posts = max(1_000, int(concurrency / LATENCY * plan.throughput_seconds))
            posts = min(posts, largest)
            for path in ("boto3 thread pool", "library (BotoPoster)", "library (AsyncHttpPoster)"):
                progress.set_description(f"throughput C={concurrency} {path}")
                row: dict[str, Any] = {"concurrency": concurrency, "path": path, "posts": posts}
                row.update(throughput(api, concurrency, posts, path))
                row["bound"] = concurrency / LATENCY
                results["throughput"].append(row)
            progress.update()
        results["api_server"] = ask(api_process, "stats")
        # The same at C=64 with the server on a thread of this process, sharing its GIL.
        from fanout_core.local.management_api import LocalManagementApi

        progress.set_description("throughput, server in-process")
        with LocalManagementApi() as local:
            local.faults.latency = LATENCY
            for i in range(4_000):
                local.connections.open(bench_id(i))
            row = {"concurrency": 64, "path": "library (AsyncHttpPoster), server in-process"}
            row["posts"] = 4_000
            row.update(throughput(local.url, 64, 4_000, "library (AsyncHttpPoster)"))
            row["bound"] = 64 / LATENCY
            results["throughput"].append(row)
        progress.update()

        with dynamodb_backend(backend) as endpoint, backends.moto_server() as sqs_url:
            sqs = boto3.client("sqs", endpoint_url=sqs_url, region_name="us-east-1")
            queue_url = sqs.create_queue(QueueName=f"bench-{uuid.uuid4().hex[:8]}")["QueueUrl"]
            checked = False
            for connections in plan.sizes:
                for room_size in plan.room_sizes:
                    if room_size > connections:
                        continue
                    measure_table(
                        plan, results, progress, api, endpoint, sqs, sqs_url, queue_url,
                        connections, room_size, check=not checked,
                    )  # fmt: skip
                    checked = True
            if (extra := extra_size(plan.sizes)) is not None:
                progress.set_description(f"sqs_batched sender N={extra:,}")
                base = FanoutConfig(
                    table="bench-sender",
                    dynamodb_endpoint=endpoint,
                    queue_url=queue_url,
                    sqs_endpoint=sqs_url,
                    management_endpoint=f"{api}/prod",
                )
                measure_sender(results, base, sqs, extra, plan.room_sizes[-1])
            # 1,000 posts/s, burst 500: ~25x less than 8 workers ask; quick: smaller, sooner.
            point = (500, 250, 50) if plan == QUICK else (20_000, 1_000, 500)
            progress.set_description(f"account limit N={point[0]:,}")
            measure_account_limit(results, endpoint, sqs_url, *point)
        progress.update(2)
    results["total_seconds"] = time.perf_counter() - started
    return results


def measure_table(
    plan: Plan,
    results: dict[str, Any],
    progress: tqdm[Any],
    api: str,
    endpoint: str | None,
    sqs: Any,
    sqs_url: str,
    queue_url: str,
    connections: int,
    room_size: int,
    *,
    check: bool,
) -> None:
    config = FanoutConfig(
        table=f"bench-{connections}-{room_size}-{uuid.uuid4().hex[:6]}",
        dynamodb_endpoint=endpoint,
        management_endpoint=f"{api}/prod",
        queue_url=queue_url,
        sqs_endpoint=sqs_url,
        segments=4,
    )
    create_table(config)
    if check:
        check_layout(config)
    progress.set_description(f"load N={connections:,} k={room_size:,}")
    seconds = load(config, connections, room_size)
    results["loading"].append(
        {"connections": connections, "room_size": room_size, "items": 2 * connections,
         "seconds": seconds}
    )  # fmt: skip
    progress.update()
    room = room_name(room_size, 0)
    sample = bench_items(BENCH_USER_CONNECTIONS, room_size, time.time(), config.ttl_seconds)
    user_rows = bench_items(0, room_size, time.time(), config.ttl_seconds)
    measured = sizes.ItemSizes(
        sizes.item_size(sample[0]),
        sizes.item_size(sample[1]),
        sizes.item_size(sizes.index_entry(sample[0])),
        sizes.item_size(sizes.index_entry(sample[1])),
        sizes.item_size(sizes.index_entry(user_rows[-1])),
    )
    for strategy in STRATEGIES:
        progress.set_description(f"resolve N={connections:,} k={room_size:,} {strategy}")
        runtime = runtime_for(config, strategy)
        try:
            kinds = {
                "room": Audience(room=room),
                "everyone": Audience(),
                "user": Audience(user=BENCH_USER),
            }
            for audience, who in kinds.items():
                row = resolve(runtime, who, most=plan.read_repeats)
                estimate = cost.estimate_reads(
                    strategy,
                    connections=connections,
                    room_size=room_size,
                    everyone=audience == "everyone",
                    sizes=measured,
                    segments=config.segments,
                    user=BENCH_USER_CONNECTIONS if audience == "user" else None,
                )
                row.update(
                    strategy=strategy,
                    audience=audience,
                    connections=connections,
                    room_size=room_size,
                    estimated_read_units=estimate.read_units,
                    estimated_requests=estimate.requests,
                )
                results["resolve"].append(row)
        finally:
            runtime.close()
    progress.update()
    # End to end through the local Management API (latency LATENCY), room and everyone.
    for concurrency in plan.e2e_concurrencies:
        for strategy in DIRECT:
            progress.set_description(f"deliver N={connections:,} k={room_size:,} C={concurrency}")
            runtime = runtime_for(dataclasses.replace(config, concurrency=concurrency), strategy)
            try:
                audiences: list[str | None] = [room]
                if connections <= plan.everyone_e2e_max and room_size == plan.room_sizes[1]:
                    audiences.append(None)
                for target in audiences:
                    result = fanout(runtime, target)
                    results["delivery"].append(
                        {
                            "strategy": strategy,
                            "audience": "room" if target else "everyone",
                            "connections": connections,
                            "room_size": room_size,
                            "concurrency": concurrency,
                            "delivered": result.delivered,
                            "failed": result.failed + result.gone,
                            "seconds": result.elapsed_seconds,
                            "posts_per_second": result.delivered / result.elapsed_seconds,
                        }
                    )
            finally:
                runtime.close()
    progress.update()
    if room_size == plan.room_sizes[1] and connections == max(plan.sizes):
        progress.set_description(f"history N={connections:,} k={room_size:,}")
        measure_history(results, config, room, room_size, resumes=plan.history_resumes)
    if room_size == plan.room_sizes[1]:
        progress.set_description(f"shard reads N={connections:,}")
        measure_shards(results, config, connections)
        measure_send(results, config, sqs, connections)
    progress.set_description(f"sqs_batched N={connections:,} k={room_size:,}")
    measure_sqs(results, config, sqs, connections, room_size, room)
    progress.update()
    if connections in plan.memory_sizes and room_size == plan.room_sizes[-1]:
        for strategy in ("gsi_query", "full_scan"):
            progress.set_description(f"memory N={connections:,} {strategy}")
            row = memory(endpoint or "", config.table, strategy, room) if endpoint else {}
            row.update(strategy=strategy, connections=connections)
            results["memory"].append(row)
    ConnectionStore(config).models.item.delete_table()


def measure_sqs(
    results: dict[str, Any],
    config: FanoutConfig,
    sqs: Any,
    connections: int,
    room_size: int,
    room: str,
) -> None:
    from fanout_core.worker import process_records

    # A queue per table: PurgeQueue is allowed once a minute, DeleteQueue is not limited.
    queue_url = sqs.create_queue(QueueName=f"bench-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    runtime = runtime_for(dataclasses.replace(config, queue_url=queue_url), "sqs_batched")
    strategy = cast("SqsBatched", runtime.strategy)
    counter = SqsCounter(strategy.client)
    try:
        for target in (room, None):
            counter.calls = 0
            result = fanout(runtime, target)
            row: dict[str, Any] = {
                "audience": "room" if target else "everyone",
                "connections": connections,
                "room_size": room_size,
                "enqueued": result.enqueued,
                "queue_messages": result.queue_messages,
                "send_message_batch_calls": counter.calls,
                "enqueue_seconds": result.elapsed_seconds,
            }
            if target is not None or connections <= EVERYONE_WORKER_MAX:
                # The worker side, as Lambda's event source would run it: batches of 10.
                delivered, receives, started = 0, 0, time.perf_counter()
                invocations = pages = 0
                while True:
                    batch = sqs.receive_message(
                        QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
                    ).get("Messages", [])
                    receives += 1
                    if not batch:
                        break
                    event = {
                        "Records": [{"messageId": m["MessageId"], "body": m["Body"]} for m in batch]
                    }
                    _, worker_results = process_records(event, runtime.deliverer, runtime.tasks)
                    delivered += sum(r.delivered for r in worker_results)
                    invocations += 1
                    pages += sum(r.dynamodb_requests for r in worker_results)
                    sqs.delete_message_batch(
                        QueueUrl=queue_url,
                        Entries=[
                            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                            for i, m in enumerate(batch)
                        ],
                    )
                row.update(
                    worker_delivered=delivered,
                    worker_receives=receives,
                    worker_invocations=invocations,
                    worker_pages=pages,
                    worker_seconds=time.perf_counter() - started,
                )
            results["sqs"].append(row)
    finally:
        runtime.close()
        sqs.delete_queue(QueueUrl=queue_url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="N=1,000 only, fewer levels")
    parser.add_argument("--backend", choices=["dynalite", "moto"], default="dynalite")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--cold-start", action="store_true", help="the cold-start figures alone: cold_start.md"
    )
    parser.add_argument("--profile", action="store_true", help="with --cold-start: cProfile tops")
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the moto server's request log
    if args.cold_start:
        from benchmarks.report import write_cold_start

        results = {"machine": machine(), **cold(quick=args.quick)}
        print(write_cold_start(results, args.out, quick=args.quick))
        if args.profile:
            profiles = {
                **results["cold_start"]["profile"],
                "fanout": results["cold_fanout"]["profile"],
            }
            for side in ("connect", "plain", "fanout"):
                print(f"## cProfile: {side}\n\n{profiles[side]['profile']}")
        return 0
    plan = QUICK if args.quick else FULL
    steps = 5 + len(plan.concurrencies)
    for n in plan.sizes:
        steps += 4 * sum(1 for k in plan.room_sizes if k <= n)
    with tqdm(total=steps, unit="step", dynamic_ncols=True) as progress:
        results = run(plan, args.backend, progress)
    from benchmarks.report import write_reports

    markdown = write_reports(results, args.out, quick=args.quick)
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
