"""sqs_batched's sending invocation: the same time for a small and a large audience.

The sender of the fan-out tree enqueues one read task per audience partition (16 for
everyone) and returns; the workers read the audience. ``measure_sqs`` (``benchmarks.run``)
times one send to everyone per table; here ``REPEATS`` sends are timed at each size, and the
smallest audience compared with the largest (the target: within 2x). When a run's sizes span
less than 10x (a quick run), one more table ``SPAN`` times the largest is loaded for the send alone.
"""

from __future__ import annotations

import statistics
import time
import uuid
from typing import Any

SPAN = 10
REPEATS = 5


def extra_size(sizes: tuple[int, ...]) -> int | None:
    """The audience to add so that the run compares sizes at least ``SPAN`` apart."""
    return None if max(sizes) >= SPAN * min(sizes) else SPAN * max(sizes)


def measure_send(results: dict[str, Any], config: Any, sqs: Any, connections: int) -> None:
    """Time ``REPEATS`` sends to everyone (after one to warm the client); a row in
    results["sender"]."""
    import dataclasses

    from fanout_core.message import Message
    from fanout_core.runtime import build_runtime

    queue_url = sqs.create_queue(QueueName=f"bench-send-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    runtime = build_runtime(
        dataclasses.replace(config, queue_url=queue_url), strategy="sqs_batched"
    )
    try:
        samples, tasks = [], 0
        for n in range(REPEATS + 1):
            started = time.perf_counter()
            result = runtime.strategy.fanout(Message("bench", "sender benchmark frame", None))
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
    import dataclasses

    from benchmarks.run import load
    from fanout_core.store import ConnectionStore
    from fanout_core.table import create_table

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


def targets(results: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
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
