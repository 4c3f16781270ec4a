"""Turn a benchmark run into results.md, results.json and PNG plots."""

from __future__ import annotations

import itertools
import json
import statistics
from pathlib import Path
from typing import Any

from benchmarks import cold_fanout, cold_start, posting
from benchmarks.account_limit import account_limit_section
from benchmarks.shards import sender_section, sender_targets, shards_section
from fanout_core import cost

STRATEGIES = ("full_scan", "gsi_query", "parallel_scan", "sqs_batched")


def _rows(results: dict[str, Any], section: str, **match: Any) -> list[dict[str, Any]]:
    return [r for r in results[section] if all(r.get(k) == v for k, v in match.items())]


def _one(results: dict[str, Any], section: str, **match: Any) -> dict[str, Any] | None:
    rows = _rows(results, section, **match)
    return rows[0] if rows else None


def _fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def targets(results: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for every target of the issue."""
    out: list[tuple[str, str, bool | None]] = []
    sizes = sorted({r["connections"] for r in results["resolve"]})
    rooms = sorted({r["room_size"] for r in results["resolve"]})
    k = rooms[len(rooms) // 2] if rooms else 0
    gsi = [_one(results, "resolve", strategy="gsi_query", audience="room", connections=n,
                room_size=k) for n in sizes]  # fmt: skip
    units = [r["read_units"] for r in gsi if r and r["read_units"] is not None]
    if len(units) >= 2:
        spread = (max(units) - min(units)) / min(units)
        out.append((f"gsi_query RRU for one room (k={k}) flat across N (within 10 %)",
                    f"{', '.join(_fmt(u) for u in units)} RRU: spread {spread:.0%}",
                    spread <= 0.10))  # fmt: skip
    scans = [_one(results, "resolve", strategy="full_scan", audience="room", connections=n,
                  room_size=k) for n in sizes]  # fmt: skip
    scan_units = [r["read_units"] for r in scans if r and r["read_units"] is not None]
    if len(scan_units) >= 2:
        grows = all(b > a for a, b in itertools.pairwise(scan_units))
        out.append(("full_scan RRU grows with N", ", ".join(_fmt(u) for u in scan_units), grows))
    for n in sizes:
        if n < 10_000:
            continue
        for room_size in rooms:
            full = _one(results, "resolve", strategy="full_scan", audience="everyone",
                        connections=n, room_size=room_size)  # fmt: skip
            par = _one(results, "resolve", strategy="parallel_scan", audience="everyone",
                       connections=n, room_size=room_size)  # fmt: skip
            if full and par:
                out.append((f"parallel_scan faster than full_scan, N={n:,} k={room_size:,}",
                            f"{par['seconds']:.2f} s vs {full['seconds']:.2f} s",
                            par["seconds"] < full["seconds"]))  # fmt: skip
    users = [_one(results, "resolve", strategy="gsi_query", audience="user", connections=n,
                  room_size=k) for n in sizes]  # fmt: skip
    user_units = [r["read_units"] for r in users if r and r["read_units"] is not None]
    if user_units:
        estimate = users[0]["estimated_read_units"] if users[0] else None
        out.append((f"gsi_query RRU for a user of 3 connections = 3 index entries, N={sizes}",
                    f"{', '.join(_fmt(u) for u in user_units)} RRU (model: {_fmt(estimate)})",
                    all(u == estimate for u in user_units)))  # fmt: skip
    lib = _one(results, "throughput", concurrency=64, path="library (AsyncHttpPoster)")
    boto = _one(results, "throughput", concurrency=64, path="boto3 thread pool")
    if lib and boto:
        ratio = lib["posts_per_second"] / boto["posts_per_second"]
        out.append(("delivery >= 2x the boto3 thread pool (C=64, L=20 ms)",
                    f"{lib['posts_per_second']:,.0f} vs {boto['posts_per_second']:,.0f} posts/s:"
                    f" {ratio:.2f}x", ratio >= 2))  # fmt: skip
        out.append(("delivery >= 2,000 posts/s at C=64, L=20 ms",
                    f"{lib['posts_per_second']:,.0f} posts/s (bound {lib['bound']:,.0f})",
                    lib["posts_per_second"] >= 2000))  # fmt: skip
    out += posting.targets(results)
    mem = {r["connections"]: r for r in _rows(results, "memory", strategy="gsi_query")}
    if len(mem) >= 2:
        small, large = mem[min(mem)], mem[max(mem)]
        ratio = large["peak_kib"] / small["peak_kib"]
        out.append((f"peak memory N={max(mem):,} within 1.5x of N={min(mem):,}",
                    f"{large['peak_kib'] / 1024:,.0f} vs {small['peak_kib'] / 1024:,.0f} MiB "
                    f"peak RSS: {ratio:.2f}x", ratio <= 1.5))  # fmt: skip
    out += cold_start.targets(results) + cold_fanout.targets(results)
    return out + sender_targets(results)


def markdown(results: dict[str, Any], *, quick: bool) -> str:
    m = results["machine"]
    lines = [
        "# Benchmark results" + (" (quick run)" if quick else ""),
        "",
        f"Machine: {m['nproc']} cores, {m['cpu']}, Python {m['python']}, boto3 {m['boto3']}; "
        f"DynamoDB backend: {results['backend']}; Management API latency "
        f"{results['latency_seconds'] * 1000:.0f} ms; run took {results['total_seconds']:.0f} s.",
        "",
        "## Targets",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    for name, measured, met in targets(results):
        lines.append(f"| {name} | {measured} | {'yes' if met else 'no'} |")
    lines += [
        "",
        "## Resolving the audience (reads only)",
        "",
        "RRU: dynalite's ConsumedCapacity; est.: the cost model (`fanout_core/cost.py`) from item "
        "sizes. Ratio: full_scan / gsi_query read units for the same audience in this run.",
        "",
        "| N | k | audience | strategy | items scanned | returned | requests (est.) "
        "| RRU | RRU est. | seconds | ratio |",
        "|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["resolve"]:
        gsi = _one(results, "resolve", strategy="gsi_query", audience=r["audience"],
                   connections=r["connections"], room_size=r["room_size"])  # fmt: skip
        ratio = ""
        if r["strategy"] == "full_scan" and gsi and gsi["read_units"] and r["read_units"]:
            ratio = f"{r['read_units'] / gsi['read_units']:,.0f}"
        lines.append(
            f"| {r['connections']:,} | {r['room_size']:,} | {r['audience']} | {r['strategy']} "
            f"| {r['items_scanned']:,} | {r['items_returned']:,} "
            f"| {r['requests']:,} ({r['estimated_requests']:,}) | {_fmt(r['read_units'])} "
            f"| {_fmt(r['estimated_read_units'])} | {r['seconds']:.3f} | {ratio} |"
        )
    lines += [
        "",
        "## Delivery throughput (C posts in flight, L = 20 ms per post; bound C / L)",
        "",
        "| C | path | posts | posts/s | bound | CPU ms / post (this process) |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for r in results["throughput"]:
        lines.append(
            f"| {r['concurrency']} | {r['path']} | {r.get('posts', 0):,} "
            f"| {r['posts_per_second']:,.0f} | {r['bound']:,.0f} | {r['cpu_ms_per_post']:.2f} |"
        )
    lines += posting.section(results)
    lines += [
        "",
        "## End to end: fan-out through the local Management API (L = 20 ms)",
        "",
        "| N | k | audience | strategy | C | delivered | failed | seconds | posts/s |",
        "|---:|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results["delivery"]:
        lines.append(
            f"| {r['connections']:,} | {r['room_size']:,} | {r['audience']} | {r['strategy']} "
            f"| {r['concurrency']} | {r['delivered']:,} | {r['failed']:,} | {r['seconds']:.2f} "
            f"| {r['posts_per_second']:,.0f} |"
        )
    lines += [
        "",
        "## sqs_batched (moto server queue)",
        "",
        "| N | k | audience | enqueued | SQS messages | SendMessageBatch calls | enqueue s "
        "| worker delivered | worker receives | worker s |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["sqs"]:
        lines.append(
            f"| {r['connections']:,} | {r['room_size']:,} | {r['audience']} | {r['enqueued']:,} "
            f"| {r['queue_messages']:,} | {r['send_message_batch_calls']:,} "
            f"| {r['enqueue_seconds']:.2f} | {r.get('worker_delivered', '')} "
            f"| {r.get('worker_receives', '')} | "
            + (f"{r['worker_seconds']:.2f}" if "worker_seconds" in r else "")
            + " |"
        )
    lines += ["", "## Memory: one fan-out to everyone in a fresh process", ""]
    lines += ["| N | strategy | RSS before (MiB) | peak RSS (MiB) | growth (MiB) | seconds |",
              "|---:|---|---:|---:|---:|---:|"]  # fmt: skip
    for r in results["memory"]:
        if "peak_kib" in r:
            lines.append(
                f"| {r['connections']:,} | {r['strategy']} | {r['before_kib'] / 1024:,.1f} "
                f"| {r['peak_kib'] / 1024:,.1f} | {(r['peak_kib'] - r['before_kib']) / 1024:,.1f} "
                f"| {r['seconds']:.1f} |"
            )
    lines += cold_start.section(results) + cold_fanout.section(results)
    lines += [
        "",
        "## Cost per million messages, from this run's measurements",
        "",
        "DynamoDB dollars from the read units dynalite reported; API Gateway, Lambda and SQS "
        "from the model (`fanout cost`), with the CPU per post measured above for AsyncHttpPoster.",
        "",
    ]
    lines += cost_section(results)
    lines += history_section(results)
    lines += shards_section(results) + sender_section(results) + account_limit_section(results)
    lines += ["", "## Loading", ""]
    for r in results["loading"]:
        lines.append(
            f"- N={r['connections']:,}, k={r['room_size']:,}: {r['items']:,} items in "
            f"{r['seconds']:.1f} s ({r['items'] / r['seconds']:,.0f} items/s)"
        )
    return "\n".join(lines) + "\n"


def history_section(results: dict[str, Any]) -> list[str]:
    """What history adds to a send, and what a resume reads (``benchmarks/history.py``)."""
    rows = results.get("history", [])
    if not rows:
        return []
    lines = [
        "",
        "## History: a send with it off and on, and a resume",
        "",
        "gsi_query, one room; DynamoDB calls per message counted by operation (writes: the "
        "counter's UpdateItem, the frame's PutItem, an idempotency key's PutItem), next to "
        "the model's extra write units (`fanout cost --history`).",
        "",
        "| setting | members | calls per message | writes / msg | model WRU / msg | ms / msg |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        if r["kind"] == "send":
            calls = ", ".join(f"{op} {n:g}" for op, n in r["calls_per_message"].items())
            lines.append(
                f"| {r['setting']} | {r['members']:,} | {calls} | {r['writes_per_message']:g} "
                f"| {r['modelled_write_units']:g} | {r['seconds_per_message'] * 1000:.1f} |"
            )
    lines += [
        "",
        "A resume of the last F frames (the handler's membership check, the counter, pages of "
        "frames; posted one at a time). Read units: dynalite's ConsumedCapacity, and the "
        "model's for AWS (strongly consistent: 1 per 4 KB).",
        "",
        "| frames | posts | requests (model) | calls | RRU (dynalite) | RRU model (AWS) | s |",
        "|---:|---:|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        if r["kind"] == "resume":
            calls = ", ".join(f"{op} {n}" for op, n in r["calls"].items())
            lines.append(
                f"| {r['frames']} | {r['posts']} | {r['requests']} ({r['modelled_requests']}) "
                f"| {calls} | {_fmt(r['read_units_dynalite'])} "
                f"| {_fmt(r['modelled_read_units_aws'])} | {r['seconds']:.2f} |"
            )
    return lines


def cost_section(results: dict[str, Any]) -> list[str]:
    lib = [r for r in results["throughput"] if r["path"] == "library (AsyncHttpPoster)"]
    cpu = statistics.median(r["cpu_ms_per_post"] for r in lib) / 1000 if lib else 0.0002
    lines = [
        f"CPU per post: {cpu * 1000:.2f} ms (median over concurrency levels).",
        "",
        "| N | k | strategy | measured RRU / msg | DynamoDB $ / M msgs | model total $ / M msgs |",
        "|---:|---:|---|---:|---:|---:|",
    ]
    for r in results["resolve"]:
        if r["audience"] != "room" or r["read_units"] is None:
            continue
        workload = cost.Workload(
            connections=r["connections"],
            room_size=r["room_size"],
            messages_per_day=1,
            post_cpu_seconds=cpu,
        )
        modelled = cost.strategy_cost(r["strategy"], workload)
        measured = r["read_units"] * cost.DYNAMODB_READ_PER_MILLION_RRU
        total = modelled.per_million - modelled.dollars["dynamodb"] * 1e6 + measured
        lines.append(
            f"| {r['connections']:,} | {r['room_size']:,} | {r['strategy']} "
            f"| {r['read_units']:,.1f} | {measured:,.2f} | {total:,.2f} |"
        )
    return lines


def plots(results: dict[str, Any], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: list[Path] = []
    sizes = sorted({r["connections"] for r in results["resolve"]})
    rooms = sorted({r["room_size"] for r in results["resolve"]})
    if not sizes:
        return written
    k = rooms[len(rooms) // 2]
    n = max(sizes)
    for metric, label in (("read_units", "read units"), ("seconds", "seconds to resolve")):
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
        for strategy in STRATEGIES:
            xs, ys = [], []
            for size in sizes:
                row = _one(results, "resolve", strategy=strategy, audience="room",
                           connections=size, room_size=k)  # fmt: skip
                if row and row[metric] is not None:
                    xs.append(size)
                    ys.append(row[metric])
            left.plot(xs, ys, marker="o", label=strategy)
            xs, ys = [], []
            for room_size in rooms:
                row = _one(results, "resolve", strategy=strategy, audience="room",
                           connections=n, room_size=room_size)  # fmt: skip
                if row and row[metric] is not None:
                    xs.append(room_size)
                    ys.append(row[metric])
            right.plot(xs, ys, marker="o", label=strategy)
        for axis, xlabel, title in (
            (left, "connections N", f"one room of k={k}, by table size"),
            (right, "room size k", f"one room, table of N={n:,}"),
        ):
            axis.set_xscale("log")
            axis.set_yscale("log")
            axis.set_xlabel(xlabel)
            axis.set_ylabel(label)
            axis.set_title(title)
            axis.grid(True, which="both", alpha=0.3)
            axis.legend()
        fig.tight_layout()
        path = out / f"{metric}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    fig, axis = plt.subplots(figsize=(6, 4.2))
    for path_name in sorted({r["path"] for r in results["throughput"]}):
        rows = [r for r in results["throughput"] if r["path"] == path_name]
        if len(rows) > 1:
            axis.plot([r["concurrency"] for r in rows], [r["posts_per_second"] for r in rows],
                      marker="o", label=path_name)  # fmt: skip
    levels = sorted({r["concurrency"] for r in results["throughput"]})
    axis.plot(levels, [c / results["latency_seconds"] for c in levels], "k--", label="bound C / L")
    axis.set_xlabel("posts in flight C")
    axis.set_ylabel("posts per second")
    axis.set_title("Delivery at L = 20 ms")
    axis.grid(True, alpha=0.3)
    axis.legend()
    fig.tight_layout()
    path = out / "throughput.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)
    return written


def write_reports(results: dict[str, Any], out: Path, *, quick: bool) -> str:
    """Write results.md, results.json and the plots (quick runs under ``out/quick``)."""
    out = out / "quick" if quick else out
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(results, quick=quick)
    (out / "results.md").write_text(text)
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    plots(results, out)
    return text


def write_cold_start(results: dict[str, Any], out: Path, *, quick: bool) -> str:
    """Write cold_start.md and cold_start.json: the cold-start sections of a run of their own."""
    out = out / "quick" if quick else out
    out.mkdir(parents=True, exist_ok=True)
    m = results["machine"]
    lines = [
        "# Cold start" + (" (quick run)" if quick else ""),
        "",
        f"Machine: {m['nproc']} cores, {m['cpu']}, Python {m['python']}, boto3 {m['boto3']}; "
        f"commit {m.get('commit') or 'unknown'}.",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    for name, measured, met in cold_start.targets(results) + cold_fanout.targets(results):
        lines.append(f"| {name} | {measured} | {'yes' if met else 'no'} |")
    text = "\n".join(lines + cold_start.section(results) + cold_fanout.section(results)) + "\n"
    (out / "cold_start.md").write_text(text)
    (out / "cold_start.json").write_text(json.dumps(results, indent=2) + "\n")
    return text
