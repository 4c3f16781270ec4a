"""CPU per post and posts per second of the posting path, next to the boto3 client's.

A ``Deliverer`` posts one frame to N connections at C posts in flight, through
``AsyncHttpPoster`` and through ``BotoPoster`` (boto3's ``post_to_connection`` from a pool of
C threads), against the lean local Management API (``benchmarks.mgmt_server --fast``) in
processes of its own that answer each post after L = 20 ms. CPU is this process's (user +
system, every thread) over the posts it made; nothing else runs in it meanwhile. The
server's CPU is reported too, so a reader can see it was not the bottleneck. Each point is
measured ``repeats`` times, the two posters in turn, and reported as median and range.

``python -m benchmarks.posting [--quick]`` runs this section alone and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

from benchmarks.common import (
    ENDPOINT,
    LATENCY,
    RESULTS,
    Served,
    ask,
    bench_id,
    cpu_seconds,
    management_api,
)
from fanout_core import metrics
from fanout_core.config import FanoutConfig
from fanout_core.delivery import Deliverer
from fanout_core.delivery.http_poster import AsyncHttpPoster
from fanout_core.delivery.posting import BotoPoster, Poster
from fanout_core.result import FanoutResult
from fanout_core.store import Target

PATHS = ("AsyncHttpPoster", "BotoPoster")
BOTO_RATE = 1_500  # posts a second the boto3 pool is given time for (it reaches ~1,000)
FRAME = b'{"id":"bench","body":"' + b"x" * 100 + b'"}'
# What the path should reach at C = 256, L = 20 ms on a 2-core machine.
TARGET_CONCURRENCY = 256
TARGET_CPU_MS = 0.1
TARGET_POSTS_PER_SECOND = 4_000
TARGET_RATIO = 5.0
# Metrics (an EMF document per invocation, a latency sample per post) on the posting path.
TARGET_METRICS_SHARE = 0.02
METRICS_ON = FanoutConfig(metrics="emf")


@dataclass(frozen=True)
class PostingPlan:
    """What this section measures."""

    concurrencies: tuple[int, ...]
    repeats: int
    seconds: float  # about how long one measurement of AsyncHttpPoster lasts at the bound
    server_processes: int = 2


FULL = PostingPlan((64, 128, 256), 3, 2.0)
QUICK = PostingPlan((64,), 1, 0.3)


def fast_api(count: int, processes: int) -> AbstractContextManager[Served]:
    """The lean Management API (``--fast``) with ``count`` open ids."""
    return management_api(LATENCY, count, "--fast", "--processes", str(processes))


def poster_for(path: str, url: str, concurrency: int) -> Poster:
    if path == "AsyncHttpPoster":
        return AsyncHttpPoster(override=f"{url}/prod", pool_size=concurrency)
    return BotoPoster(override=f"{url}/prod", pool_size=concurrency)


def measure(
    server: Served, path: str, concurrency: int, posts: int, *, with_metrics: bool = False
) -> dict[str, Any]:
    """One fan-out of ``posts`` posts at ``concurrency``, after a warm-up fan-out; with
    metrics, inside an invocation that writes its EMF document (to a list, not stdout)."""
    url = server.url
    targets = [Target(bench_id(i), ENDPOINT) for i in range(posts)]
    poster = poster_for(path, url, concurrency)
    deliverer = Deliverer(poster, concurrency=concurrency)
    try:
        # Warm: connections open, threads started, the signing key and headers cached.
        deliverer.deliver_targets(targets[: 2 * concurrency], FRAME, FanoutResult("w", None, "w"))
        before = ask(server, "stats")
        written: list[str] = []
        previous = (
            metrics.set_sink(lambda lines, _: written.extend(lines)) if with_metrics else None
        )
        collecting = metrics.invocation("bench", METRICS_ON) if with_metrics else nullcontext()
        with collecting:
            cpu, started = cpu_seconds(), time.perf_counter()
            result = FanoutResult("bench", None, "m")
            deliverer.deliver_targets(targets, FRAME, result)
            if with_metrics:
                metrics.flush(METRICS_ON)
            elapsed, cpu = time.perf_counter() - started, cpu_seconds() - cpu
        after = ask(server, "stats")
    finally:
        if with_metrics:
            metrics.set_sink(previous)
        deliverer.close()
        poster.close()
    if with_metrics:  # the document was written, with every post and a full sample
        [document] = [json.loads(line) for line in written]
        if document["Delivered"] != posts or len(document["PostLatency"]) != 100:
            raise SystemExit(f"metrics: {document}")
    if result.delivered != posts:
        raise SystemExit(f"{path}: {result.delivered} of {posts} delivered: {result.summary()}")
    busiest = max(b - a for a, b in zip(before["cpu_seconds"], after["cpu_seconds"], strict=True))
    return {
        "path": path,
        "concurrency": concurrency,
        "posts": posts,
        "seconds": elapsed,
        "posts_per_second": posts / elapsed,
        "cpu_ms_per_post": cpu / posts * 1000,
        "server_posts": after["posts"] - before["posts"],
        # The busiest server process's CPU over the measurement: 1.0 would be a full core.
        "server_busiest_cpu_share": busiest / elapsed,
    }


def measure_metrics(server: Served, concurrency: int, posts: int, repeats: int) -> dict[str, Any]:
    """CPU per post with metrics off and on, in turn (AsyncHttpPoster), and the recording's
    own cost per post, timed apart (the difference of two noisy CPU figures can be noise)."""
    import timeit

    runs = {"off": [], "on": []}  # type: dict[str, list[float]]
    for _ in range(repeats):
        for name in ("off", "on"):
            row = measure(server, "AsyncHttpPoster", concurrency, posts, with_metrics=name == "on")
            runs[name].append(row["cpu_ms_per_post"])
    sample = metrics.Reservoir()
    clock = time.perf_counter
    loops = 200_000
    # What a post pays: two clock reads and one offer to the sample (past its first 100).
    per_post = min(
        timeit.repeat(lambda: sample.add((clock() - clock()) * 1000.0), number=loops, repeat=5)
    )
    off, on = statistics.median(runs["off"]), statistics.median(runs["on"])
    return {
        "concurrency": concurrency,
        "posts": posts,
        "runs": runs,
        "cpu_ms_per_post_off": off,
        "cpu_ms_per_post_on": on,
        "share_measured": (on - off) / off,
        "recording_ms_per_post": per_post / loops * 1000,
        "share_of_recording": per_post / loops * 1000 / off,
    }


def check_signatures(count: int = 64) -> dict[str, int]:
    """Post ``count`` frames to a LocalManagementApi that checks each signature (botocore)."""
    import botocore.session

    from fanout_core.local.management_api import LocalManagementApi

    credentials = botocore.session.get_session().get_credentials()
    assert credentials is not None
    frozen = credentials.get_frozen_credentials()
    keys = {str(frozen.access_key): str(frozen.secret_key)}
    with LocalManagementApi(credentials=keys) as api:
        ids = [api.connections.open(bench_id(i)) for i in range(count)]
        poster = AsyncHttpPoster(override=f"{api.url}/prod", pool_size=16)
        deliverer = Deliverer(poster, concurrency=16)
        result = FanoutResult("check", None, "m")
        try:
            deliverer.deliver_targets([Target(cid, ENDPOINT) for cid in ids], FRAME, result)
        finally:
            deliverer.close()
            poster.close()
        return {
            "posts": count,
            "accepted": api.total("POST", 200),
            "refused": api.total("POST", 403),
        }


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Median and range per (concurrency, path), and the ratio to BotoPoster."""
    out = []
    for concurrency in sorted({r["concurrency"] for r in runs}):
        medians: dict[str, float] = {}
        for path in PATHS:
            rows = [r for r in runs if (r["concurrency"], r["path"]) == (concurrency, path)]
            rates = [r["posts_per_second"] for r in rows]
            cpus = [r["cpu_ms_per_post"] for r in rows]
            medians[path] = statistics.median(rates)
            out.append({
                "concurrency": concurrency,
                "path": path,
                "runs": len(rows),
                "posts_per_second": statistics.median(rates),
                "posts_per_second_range": [min(rates), max(rates)],
                "cpu_ms_per_post": statistics.median(cpus),
                "cpu_ms_per_post_range": [min(cpus), max(cpus)],
                "server_busiest_cpu_share": max(r["server_busiest_cpu_share"] for r in rows),
                "bound": concurrency / LATENCY,
            })  # fmt: skip
        out[-2]["ratio_to_boto"] = medians["AsyncHttpPoster"] / medians["BotoPoster"]
    return out


def measure_posting(plan: PostingPlan) -> dict[str, Any]:
    """This section's results: every run, their summary, and the signature check."""
    largest = max(int(c / LATENCY * plan.seconds) for c in plan.concurrencies)
    runs = []
    signatures = check_signatures()
    with fast_api(largest, plan.server_processes) as server:
        for concurrency in plan.concurrencies:
            for repeat in range(plan.repeats):
                for path in PATHS:  # in turn, so that drift in the machine's load hits both
                    rate = concurrency / LATENCY if path == "AsyncHttpPoster" else BOTO_RATE
                    posts = max(500, int(min(rate, concurrency / LATENCY) * plan.seconds))
                    row = measure(server, path, concurrency, posts)
                    row["repeat"] = repeat
                    runs.append(row)
        top = max(plan.concurrencies)
        measured_metrics = measure_metrics(
            server, top, max(500, int(top / LATENCY * plan.seconds)), max(plan.repeats, 1) * 2
        )
    return {
        "metrics": measured_metrics,
        "plan": asdict(plan),
        "latency_seconds": LATENCY,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "signatures": signatures,
        "runs": runs,
        "summary": summarize(runs),
    }


# -- the report ---------------------------------------------------------------------------


def _row(results: dict[str, Any], concurrency: int, path: str) -> dict[str, Any] | None:
    for row in results.get("posting", {}).get("summary", []):
        if (row["concurrency"], row["path"]) == (concurrency, path):
            return cast(dict[str, Any], row)
    return None


def targets(results: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for the posting path at C = 256."""
    if "posting" not in results:
        return []
    top = TARGET_CONCURRENCY
    ours, boto = _row(results, top, "AsyncHttpPoster"), _row(results, top, "BotoPoster")
    if ours is None or boto is None:  # a quick run: C = 256 was not measured
        return []
    low, high = ours["cpu_ms_per_post_range"]
    slow, fast = ours["posts_per_second_range"]
    where = f"C={top}, L={LATENCY * 1000:.0f} ms"
    return [
        (f"CPU per post <= {TARGET_CPU_MS} ms ({where})",
         f"{ours['cpu_ms_per_post']:.3f} ms (runs {low:.3f}-{high:.3f})",
         ours["cpu_ms_per_post"] <= TARGET_CPU_MS),
        (f">= {TARGET_POSTS_PER_SECOND:,} posts/s ({where})",
         f"{ours['posts_per_second']:,.0f} posts/s (runs {slow:,.0f}-{fast:,.0f})",
         ours["posts_per_second"] >= TARGET_POSTS_PER_SECOND),
        *_metrics_target(results),
        (f">= {TARGET_RATIO:.0f}x the boto3 thread pool (BotoPoster, {where})",
         f"{ours['posts_per_second']:,.0f} vs {boto['posts_per_second']:,.0f} posts/s: "
         f"{ours['ratio_to_boto']:.2f}x", ours["ratio_to_boto"] >= TARGET_RATIO),
    ]  # fmt: skip


def _metrics_target(results: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    found = results["posting"].get("metrics")
    if not found or found["concurrency"] != TARGET_CONCURRENCY:
        return []
    low, high = min(found["runs"]["on"]), max(found["runs"]["on"])
    return [
        (f"metrics < {TARGET_METRICS_SHARE:.0%} of the posting CPU (C={TARGET_CONCURRENCY})",
         f"recording {found['recording_ms_per_post'] * 1e6:,.0f} ns per post = "
         f"{found['share_of_recording']:.2%} of {found['cpu_ms_per_post_off']:.3f} ms; on vs off "
         f"measured: {found['share_measured']:+.1%} (on: runs {low:.3f}-{high:.3f} ms)",
         found["share_of_recording"] < TARGET_METRICS_SHARE),
    ]  # fmt: skip


def section(results: dict[str, Any]) -> list[str]:
    """The markdown of this section, empty if the run did not measure it."""
    posting = results.get("posting")
    if not posting:
        return []
    plan, checked = posting["plan"], posting["signatures"]
    lines = [
        "",
        f"## The posting path: CPU per post (C posts in flight, L = "
        f"{posting['latency_seconds'] * 1000:.0f} ms)",
        "",
        f"One fan-out through the Deliverer per run, {plan['repeats']} run(s) per point, the "
        f"posters in turn; the lean Management API in {plan['server_processes']} processes "
        f"(SO_REUSEPORT). CPU: this process's, per post; server: the busiest server process's "
        f"share of a core. Load average at the start: "
        f"{', '.join(f'{x:.1f}' for x in posting['load_average'])} on {posting['cpus']} cores. "
        f"Signatures: {checked['accepted']} of {checked['posts']} posts accepted by a local "
        f"Management API that recomputes each with botocore ({checked['refused']} refused).",
        "",
        "| C | poster | posts/s (median) | runs | CPU ms / post (median) | runs | bound "
        "| server CPU | x BotoPoster |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in posting["summary"]:
        slow, fast = r["posts_per_second_range"]
        low, high = r["cpu_ms_per_post_range"]
        ratio = f"{r['ratio_to_boto']:.2f}" if "ratio_to_boto" in r else ""
        lines.append(
            f"| {r['concurrency']} | {r['path']} | {r['posts_per_second']:,.0f} "
            f"| {slow:,.0f}-{fast:,.0f} | {r['cpu_ms_per_post']:.3f} | {low:.3f}-{high:.3f} "
            f"| {r['bound']:,.0f} | {r['server_busiest_cpu_share']:.0%} | {ratio} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.posting", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="C=64, one run")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    results = {"posting": measure_posting(QUICK if args.quick else FULL)}
    lines = ["# The posting path" + (" (quick run)" if args.quick else ""), ""]
    lines += [f"- {name}: {measured}: {'met' if met else 'not met'}"
              for name, measured, met in targets(results)]  # fmt: skip
    text = "\n".join(lines + section(results)) + "\n"
    out = args.out / "quick" if args.quick else args.out
    out.mkdir(parents=True, exist_ok=True)
    (out / "posting.md").write_text(text)
    (out / "posting.json").write_text(json.dumps(results, indent=2) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
