"""The simulator against the benchmark: this machine's parameters from the smallest runs,
predictions for the larger ones.

``python -m benchmarks.simulate_check [results.json]`` reads a ``benchmarks.run`` result
file, derives the machine's parameters from its own measurements at the smallest size
(1,000 connections): a page's request time, the time per MB a page reads and per item it
returns (least squares over the resolve rows), a post's round trip (the 1,000 posts at C=8),
its CPU (the same at the largest C), a fan-out's fixed cost (the rooms of 10), and the SQS
worker's request time (its room of 10). It then predicts every larger run with the same
model ``fanout simulate`` uses, and prints measured, predicted and the error.

Comparable: the direct strategies' deliveries (room and everyone), the audience reads, and
the worker's post batches. Not comparable: ``sqs_batched``'s sending invocation, which in
files written before the fan-out tree read the whole audience and enqueued its ids; the
tree's own run is not in those files.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fanout_core.config import DEFAULT_CONCURRENCY  # the worker's, in benchmarks.run
from fanout_core.simulate import Platform, simulate
from fanout_core.simulate.model import read_seconds
from fanout_core.simulate.pieces import post_seconds_alone, read_plan

RESULTS = Path(__file__).resolve().parent / "results" / "results.json"
TOLERANCE = 0.25
# A run shorter than this is one unrepeated timing of a single request or two, where a 2 ms
# hiccup is 25 %: reported, not judged.
SHORTEST_JUDGED = 0.020
# dynalite is one Node.js process: it serves one request at a time, so segments and shards
# read on threads take as long as read in turn (the 1,000-connection rows agree).
DYNALITE_PARALLELISM = 1


@dataclass(frozen=True)
class Point:
    """One measured run and the model's prediction."""

    kind: str  # "deliver", "resolve" or "worker"
    label: str
    measured: float
    predicted: float

    @property
    def error(self) -> float:
        """Predicted over measured, minus one."""
        return self.predicted / self.measured - 1

    @property
    def within(self) -> bool:
        """Within the tolerance."""
        return abs(self.error) <= TOLERANCE

    @property
    def judged(self) -> bool:
        """Long enough to judge."""
        return self.measured >= SHORTEST_JUDGED


def _solve(rows: list[list[float]], values: list[float]) -> list[float]:
    """Least squares by the normal equations (three unknowns)."""
    n = len(rows[0])
    a = [[sum(r[i] * r[j] for r in rows) for j in range(n)] for i in range(n)]
    b = [sum(r[i] * v for r, v in zip(rows, values, strict=True)) for i in range(n)]
    for col in range(n):  # Gauss-Jordan with partial pivoting
        pivot = max(range(col, n), key=lambda r: abs(a[r][col]))
        a[col], a[pivot], b[col], b[pivot] = a[pivot], a[col], b[pivot], b[col]
        for r in range(n):
            if r != col and a[col][col]:
                f = a[r][col] / a[col][col]
                a[r] = [x - f * y for x, y in zip(a[r], a[col], strict=True)]
                b[r] -= f * b[col]
    return [b[i] / a[i][i] for i in range(n)]


def _reader(strategy: str) -> str:
    """Whose pages a strategy's resolve read: sqs_batched's sending invocation read the
    audience with gsi_query's pages in files before the fan-out tree."""
    return "gsi_query" if strategy == "sqs_batched" else strategy


def _room(row: dict[str, Any]) -> int | None:
    return row["room_size"] if row["audience"] == "room" else None


def local_platform(results: dict[str, Any]) -> tuple[Platform, dict[str, float]]:
    """This machine's platform, from the result file's smallest runs only."""
    smallest = min(results["plan"]["sizes"])
    base = Platform(
        account_rate=None,  # the local Management API has no account bucket
        vcpu=1.0,  # CPU per post and per item are measured as they are
        read_parallelism=DYNALITE_PARALLELISM,
        concurrent_shards=True,  # gsi_query reads the everyone-shards at once
        segments=4,  # benchmarks.run's FANOUT_SEGMENTS
    )
    features, seconds = [], []
    for row in results["resolve"]:
        if row["connections"] != smallest or row["audience"] not in ("room", "everyone"):
            continue
        plan = read_plan(_reader(row["strategy"]), row["connections"], _room(row), base)
        features.append([plan.requests, plan.megabytes, plan.returned])
        seconds.append(row["seconds"])
    request, per_mb, per_item = _solve(features, seconds)
    platform = replace(
        base, read_request=request, read_seconds_per_mb=per_mb, decode_cpu_per_item=per_item
    )
    small = [r for r in results["delivery"] if r["connections"] == smallest]
    most = max(r["delivered"] for r in small)
    low = min(r["concurrency"] for r in small)
    high = max(r["concurrency"] for r in small)

    def posting(row: dict[str, Any], p: Platform) -> float:
        plan = read_plan(row["strategy"], row["connections"], _room(row), p)
        return float(row["seconds"] - read_seconds(plan, p)[1])

    slow = [r for r in small if r["concurrency"] == low and r["delivered"] == most]
    rounds = math.ceil(most / low)
    latency = sum(posting(r, platform) for r in slow) / len(slow) / rounds
    platform = replace(platform, post_latency=latency)
    fast = [r for r in small if r["concurrency"] == high and r["delivered"] == most]
    cpu = sum(posting(r, platform) for r in fast) / len(fast) / most
    platform = replace(platform, post_cpu=cpu)
    tiny = [r for r in small if r["delivered"] == min(x["delivered"] for x in small)]
    overhead = sum(r["seconds"] - _predict_delivery(r, platform) for r in tiny) / len(tiny)
    platform = replace(platform, fanout_overhead=max(0.0, overhead))
    workers = [r for r in results["sqs"] if r["connections"] == smallest and "worker_seconds" in r]
    # Per call (the receives and one delete each): the median of the smallest runs, as the
    # first of them also pays for the queue's warm-up.
    sqs = statistics.median(
        (r["worker_seconds"] - _worker_posts(r, platform)) / (r["worker_receives"] + 1)
        for r in workers
    )
    platform = replace(platform, sqs_request=max(0.0, sqs))
    derived = {
        "read_request_ms": request * 1000,
        "read_ms_per_mb": per_mb * 1000,
        "decode_us_per_item": per_item * 1e6,
        "post_latency_ms": latency * 1000,
        "post_cpu_ms": cpu * 1000,
        "fanout_overhead_ms": platform.fanout_overhead * 1000,
        "sqs_request_ms": platform.sqs_request * 1000,
    }
    return platform, derived


def _predict_delivery(row: dict[str, Any], platform: Platform) -> float:
    p = replace(platform, concurrency=row["concurrency"])
    return simulate(row["strategy"], row["connections"], _room(row), p).seconds


def _worker_posts(row: dict[str, Any], platform: Platform) -> float:
    """The benchmark's one worker, its records one after another: the tree's pages read in
    turn, and posts of up to 100 targets per record (a read task's first 100, post batches)."""
    p = replace(platform, concurrency=DEFAULT_CONCURRENCY)
    plan = read_plan("sqs_batched", row["connections"], _room(row), p)
    seconds = read_seconds(replace(plan, concurrent=False), p)[1]
    seconds += plan.largest_key_reads * p.read_request
    left = row["worker_delivered"]
    while left > 0:
        batch = min(left, p.targets_per_message)
        seconds += post_seconds_alone(batch, p)
        left -= batch
    return seconds


def predictions(results: dict[str, Any]) -> tuple[list[Point], dict[str, float]]:
    """Every run larger than the smallest, measured and predicted."""
    platform, derived = local_platform(results)
    smallest = min(results["plan"]["sizes"])
    points = []
    for row in results["delivery"]:
        if row["connections"] > smallest:
            label = (f"{row['strategy']} {row['audience']} N={row['connections']:,} "
                     f"k={row['room_size']:,} C={row['concurrency']}")  # fmt: skip
            points.append(Point("deliver", label, row["seconds"], _predict_delivery(row, platform)))
    for row in results["resolve"]:
        if row["connections"] > smallest and row["audience"] in ("room", "everyone"):
            plan = read_plan(_reader(row["strategy"]), row["connections"], _room(row), platform)
            label = (f"{row['strategy']} {row['audience']} N={row['connections']:,} "
                     f"k={row['room_size']:,}")  # fmt: skip
            points.append(Point("resolve", label, row["seconds"], read_seconds(plan, platform)[1]))
    for row in results["sqs"]:
        if row["connections"] > smallest and "worker_seconds" in row:
            calls = row["worker_receives"] + 1
            predicted = _worker_posts(row, platform) + calls * platform.sqs_request
            label = f"sqs_batched {row['audience']} N={row['connections']:,} k={row['room_size']:,}"
            points.append(Point("worker", label, row["worker_seconds"], predicted))
    return points, derived


def report(points: list[Point], derived: dict[str, float]) -> str:
    """A Markdown table of every point."""
    lines = [
        "Derived from the smallest runs: "
        + ", ".join(f"{name} {value:.3g}" for name, value in derived.items()),
        "",
        "| kind | run | measured s | predicted s | error |",
        "|---|---|---:|---:|---:|",
    ]
    for p in points:
        mark = "" if p.within else " **miss**" if p.judged else " (not judged: too short)"
        lines.append(
            f"| {p.kind} | {p.label} | {p.measured:.3f} | {p.predicted:.3f} "
            f"| {p.error:+.0%}{mark} |"
        )
    judged = [p for p in points if p.judged]
    missed = [p for p in judged if not p.within]
    lines += [
        "",
        f"{len(judged) - len(missed)} of {len(judged)} runs of {SHORTEST_JUDGED * 1000:g} ms or "
        f"more within {TOLERANCE:.0%}; {len(points) - len(judged)} shorter ones not judged.",
    ]
    lines += [f"- miss: {p.kind} {p.label}: {p.error:+.0%}" for p in missed]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else RESULTS
    points, derived = predictions(json.loads(path.read_text()))
    print(report(points, derived))
    return 0 if all(p.within for p in points if p.judged) else 1


if __name__ == "__main__":
    raise SystemExit(main())
