"""gsi_query's send to everyone, its 16 shards read one after another or all at once; and
sqs_batched's sending invocation, the same time for a small and a large audience.

On a loaded table, each way of gsi_query reads the audience twice: alone (how long the reads
take), and feeding a delivery through the local Management API (time to the first post, to
the last page read, to the last post). The concurrent reads feed the same bounded delivery: a
reader waits while delivery is behind, so the last read is bounded by the posts, not by the
reads.

The sender of sqs_batched's fan-out tree enqueues one read task per audience partition (16
for everyone) and returns; the workers read the audience. ``benchmarks.run`` times one send
to everyone per table; here ``REPEATS`` sends are timed at each size, and the smallest
audience compared with the largest (the target: within 2x). When a run's sizes span less
than 10x (a quick run), one more table ``SPAN`` times the largest is loaded for the send alone.

``python -m benchmarks.shards SIZE...`` runs both alone.
"""

from __future__ import annotations

import dataclasses
import functools
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, cast

from benchmarks.common import LATENCY, load, management_api
from fanout_core.config import FanoutConfig
from fanout_core.delivery.http_poster import AsyncHttpPoster
from fanout_core.delivery.posting import PostOutcome
from fanout_core.message import Message
from fanout_core.outgoing import outgoing
from fanout_core.runtime import build_runtime
from fanout_core.store import ConnectionStore, Page
from fanout_core.table import create_table

if TYPE_CHECKING:  # at run time the class is fanout_core.strategies', through the registry
    from strategies.gsi_query import GsiQuery

CONCURRENCY = 64


class FirstPost(AsyncHttpPoster):
    """AsyncHttpPoster that notes when its first post started."""

    first: float | None = None

    async def post_async(self, endpoint: str, connection_id: str, data: bytes) -> PostOutcome:
        if self.first is None:
            self.first = time.perf_counter()
        return await super().post_async(endpoint, connection_id, data)


def timed(pages: Iterator[Page], times: list[float]) -> Iterator[Page]:
    """``pages``, noting when each one reached the consumer."""
    for page in pages:
        times.append(time.perf_counter())
        yield page


def timed_pages(
    read: Callable[[str | None], Iterator[Page]], times: list[float], room: str | None
) -> Iterator[Page]:
    """``read(room)``, timed."""
    return timed(read(room), times)


def measure_shards(results: dict[str, Any], config: FanoutConfig, connections: int) -> None:
    """Rows in results["shards"]: reads alone, then with delivery, sequential and concurrent."""
    config = dataclasses.replace(config, concurrency=CONCURRENCY)
    for concurrent in (False, True):
        poster = FirstPost(override=config.management_endpoint, pool_size=CONCURRENCY)
        runtime = build_runtime(config, strategy="gsi_query", poster=poster)
        strategy = cast("GsiQuery", runtime.strategy)
        strategy.concurrent_shards = concurrent
        read_pages = strategy.audience_pages
        try:
            times: list[float] = []
            started = time.perf_counter()
            items = sum(len(page.targets) for page in timed(read_pages(None), times))
            row: dict[str, Any] = {
                "connections": connections,
                "reads": "concurrent" if concurrent else "sequential",
                "items": items,
                "pages": len(times),
                "read_first_page_seconds": times[0] - started,
                "read_seconds": time.perf_counter() - started,
            }
            times.clear()
            strategy.audience_pages = functools.partial(timed_pages, read_pages, times)  # type: ignore[method-assign]
            started = time.perf_counter()
            result = strategy.fanout(outgoing(Message("bench", "shard benchmark frame", None)))
            ended = time.perf_counter()
            row.update(
                concurrency=CONCURRENCY,
                delivered=result.delivered,
                failed=result.failed + result.gone,
                first_post_seconds=(poster.first or ended) - started,
                last_read_seconds=times[-1] - started,
                delivery_seconds=ended - started,
            )
            results["shards"].append(row)
        finally:
            runtime.close()


def shards_section(results: dict[str, Any]) -> list[str]:
    """The report's lines for results["shards"]."""
    rows = results.get("shards", [])
    if not rows:
        return []
    lines = [
        "",
        "## gsi_query to everyone: the 16 shards read one after another, or at once",
        "",
        "Reads alone (the pages drained, nothing posted), then the same send delivered through "
        f"the local Management API (C = {CONCURRENCY}, L = 20 ms): seconds from the start to the "
        "first post, to the last page read and to the last post.",
        "",
        "| N | shard reads | pages | reads: first page s | reads: all s | delivered "
        "| first post s | last read s | last post s |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['connections']:,} | {r['reads']} | {r['pages']:,} "
            f"| {r['read_first_page_seconds']:.3f} | {r['read_seconds']:.2f} "
            f"| {r['delivered']:,} | {r['first_post_seconds']:.3f} "
            f"| {r['last_read_seconds']:.2f} | {r['delivery_seconds']:.2f} |"
        )
    return lines


SPAN = 10
REPEATS = 5


def extra_size(sizes: tuple[int, ...]) -> int | None:
    """The audience to add so that the run compares sizes at least ``SPAN`` apart."""
    return None if max(sizes) >= SPAN * min(sizes) else SPAN * max(sizes)


def measure_send(results: dict[str, Any], config: Any, sqs: Any, connections: int) -> None:
    """Time ``REPEATS`` sends to everyone (after one to warm the client); a row in
    results["sender"]."""
    queue_url = sqs.create_queue(QueueName=f"bench-send-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    runtime = build_runtime(
        dataclasses.replace(config, queue_url=queue_url), strategy="sqs_batched"
    )
    try:
        samples, tasks = [], 0
        for n in range(REPEATS + 1):
            started = time.perf_counter()
            frame = outgoing(Message("bench", "sender benchmark frame", None))
            result = runtime.strategy.fanout(frame)
            if n:
                samples.append(time.perf_counter() - started)
            tasks = result.queue_messages
        results["sender"].append(
            {"connections": connections, "read_tasks": tasks, "median_seconds":
             statistics.median(samples), "min_seconds": min(samples), "samples": samples}
        )  # fmt: skip
    finally:
        runtime.close()
        sqs.delete_queue(QueueUrl=queue_url)


def measure_sender(
    results: dict[str, Any], base: Any, sqs: Any, connections: int, room_size: int
) -> None:
    """Load a table of ``connections`` for ``measure_send`` alone."""
    config = dataclasses.replace(base, table=f"bench-sender-{uuid.uuid4().hex[:6]}")
    create_table(config)
    try:
        seconds = load(config, connections, room_size)
        results["loading"].append(
            {"connections": connections, "room_size": room_size, "items": 2 * connections,
             "seconds": seconds}
        )  # fmt: skip
        measure_send(results, config, sqs, connections)
    finally:
        ConnectionStore(config).models.item.delete_table()


def sender_targets(results: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """The issue's target: the sending invocation within 2x from the smallest to the largest."""
    rows = sorted(results.get("sender", []), key=lambda r: r["connections"])
    if len(rows) < 2:
        return []
    small, large = rows[0], rows[-1]
    ratio = large["median_seconds"] / small["median_seconds"]
    return [
        (
            f"sqs_batched sending invocation: N={large['connections']:,} within 2x of "
            f"N={small['connections']:,}",
            f"{large['median_seconds'] * 1000:.0f} vs {small['median_seconds'] * 1000:.0f} ms "
            f"(median of {len(small['samples'])}): {ratio:.2f}x",
            ratio <= 2,
        )
    ]


def sender_section(results: dict[str, Any]) -> list[str]:
    """The report's lines: the send to everyone by audience size."""
    rows = sorted(results.get("sender", []), key=lambda r: r["connections"])
    if not rows:
        return []
    small = rows[0]["median_seconds"]
    lines = [
        "",
        "## sqs_batched: the sending invocation by audience size",
        "",
        "A send to everyone enqueues one read task per everyone-shard and returns: "
        f"median and best of {len(rows[0]['samples'])} sends after a first one. (The "
        "sqs_batched table above times one send per table, its enqueue s.)",
        "",
        "| audience | read tasks | median ms | best ms | vs the smallest |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['connections']:,} | {r['read_tasks']} | {r['median_seconds'] * 1000:.1f} "
            f"| {r['min_seconds'] * 1000:.1f} | {r['median_seconds'] / small:.2f}x |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    """Load a table per size; the shard reads and sqs_batched's sending invocation on each."""
    import argparse
    import logging

    import boto3

    from fanout_core.local import backends

    parser = argparse.ArgumentParser(prog="python -m benchmarks.shards", description=__doc__)
    parser.add_argument("sizes", type=int, nargs="+", help="connections in each table")
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the moto server's request log
    results: dict[str, Any] = {"shards": [], "sender": [], "loading": []}
    with (
        management_api(LATENCY, max(args.sizes)) as api,
        backends.dynalite() as endpoint,
        backends.moto_server() as sqs_url,
    ):
        sqs = boto3.client("sqs", endpoint_url=sqs_url, region_name="us-east-1")
        for connections in args.sizes:
            config = FanoutConfig(
                table=f"bench-shards-{uuid.uuid4().hex[:6]}",
                dynamodb_endpoint=endpoint,
                management_endpoint=f"{api.url}/prod",
                sqs_endpoint=sqs_url,
            )
            create_table(config)
            try:
                load(config, connections, room_size=100)
                measure_shards(results, config, connections)
                measure_send(results, config, sqs, connections)
            finally:
                ConnectionStore(config).models.item.delete_table()
    print("\n".join(shards_section(results) + sender_section(results)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
