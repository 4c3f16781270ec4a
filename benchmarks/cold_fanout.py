"""Cold start: the CPU a container's first fan-out spends beyond a warm one's.

In a fresh process of the installed wheel (``common.installed_wheel``, ``cold_child.py
fanout``), after ``from fanout_core import Fanout``: ``Fanout().publish`` to a room of 8,000
at ``FANOUT_CONCURRENCY=256`` through the local Management API (L = 20 ms), on dynalite,
then the same publish again. Process CPU time (user + system, every thread) around each
call, from outside the library; cold minus warm, the median over several processes, with
the posts per second of both. A profiled run says what the first one still builds, loads,
starts and imports. ``python -m benchmarks.run --cold-start [--quick] [--profile]`` runs it
with ``benchmarks/cold_start.py`` alone.
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.common import (
    FANOUT_MARK,
    LATENCY,
    cold_child,
    import_times,
    imported_beyond,
    imports_summary,
    lambda_env,
    load,
    management_api,
    profile_summary,
    room_name,
)
from fanout_core.config import FanoutConfig
from fanout_core.table import create_table

TARGET_EXTRA_CPU = 0.25  # seconds
CONNECTIONS = 8_000
CONCURRENCY = 256
FULL, QUICK = 5, 2  # processes


def measure_cold_fanout(python: Path, repeats: int) -> dict[str, Any]:
    """This section's results, from the venv of ``python`` (an ``installed_wheel``)."""
    from fanout_core.local import backends

    started, load_average = time.perf_counter(), os.getloadavg()
    with backends.dynalite() as endpoint, management_api(LATENCY, CONNECTIONS) as api:
        config = FanoutConfig(table=f"cold-fanout-{uuid.uuid4().hex[:6]}",
                              dynamodb_endpoint=endpoint)  # fmt: skip
        create_table(config)
        load(config, CONNECTIONS, room_size=CONNECTIONS)
        room = room_name(CONNECTIONS, 0)
        env = lambda_env(
            FANOUT_TABLE=config.table,
            FANOUT_CONCURRENCY=str(CONCURRENCY),
            AWS_ENDPOINT_URL_DYNAMODB=endpoint,
            AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI=f"{api.url}/prod",
        )
        runs = [cold_child(python, env, "fanout", room) for _ in range(repeats)]
        profiled = cold_child(python, env, "fanout", room, "--profile")
        traced = cold_child(python, env, "fanout", room, flags=("-X", "importtime"))["stderr"]
    first = import_times(traced, f"{FANOUT_MARK} cold", f"{FANOUT_MARK} warm")
    for run in runs:
        for side in ("cold", "warm"):
            if run[side]["delivered"] != CONNECTIONS:
                raise SystemExit(f"a {side} fan-out delivered {run[side]['delivered']}: {run}")
    extra = [r["cold"]["cpu"] - r["warm"]["cpu"] for r in runs]

    def median(side: str, key: str) -> float:
        return float(statistics.median(r[side][key] for r in runs))

    return {
        "processes": repeats,
        "load_average": load_average,
        "connections": CONNECTIONS,
        "concurrency": CONCURRENCY,
        "latency_seconds": LATENCY,
        "extra_cpu_seconds": statistics.median(extra),
        "extra_cpu_range": [min(extra), max(extra)],
        "cold_cpu_seconds": median("cold", "cpu"),
        "warm_cpu_seconds": median("warm", "cpu"),
        "import_cpu_seconds": statistics.median(r["import_cpu"] for r in runs),
        "cold_posts_per_second": CONNECTIONS / median("cold", "seconds"),
        "warm_posts_per_second": CONNECTIONS / median("warm", "seconds"),
        "runs": runs,
        "profile": profiled,
        "imported": imported_beyond(first, {}),
        "seconds": time.perf_counter() - started,
    }


def targets(results: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for the first fan-out."""
    f = results.get("cold_fanout")
    if not f:
        return []
    low, high = f["extra_cpu_range"]
    return [
        (f"a first fan-out's CPU beyond a warm one's at most {TARGET_EXTRA_CPU} s "
         f"(N={f['connections']:,}, C={f['concurrency']})",
         f"{f['extra_cpu_seconds']:.2f} s (median of {f['processes']}; {low:.2f}-{high:.2f})",
         f["extra_cpu_seconds"] <= TARGET_EXTRA_CPU),
    ]  # fmt: skip


def section(results: dict[str, Any]) -> list[str]:
    """The markdown of this section, empty if the run did not measure it."""
    f = results.get("cold_fanout")
    if not f:
        return []
    return [
        "",
        "## Cold start: the first fan-out's CPU beyond a warm one's",
        "",
        f"`Fanout().publish` to a room of {f['connections']:,} at C = {f['concurrency']}, "
        f"L = {f['latency_seconds'] * 1000:.0f} ms, in a fresh process of the installed wheel "
        f"after its import, then the same again; process CPU around each call, the median of "
        f"{f['processes']} processes. Load average at the start: "
        f"{', '.join(f'{x:.1f}' for x in f['load_average'])}.",
        "",
        "| | CPU s | posts/s |",
        "|---|---:|---:|",
        f"| cold: the first fan-out | {f['cold_cpu_seconds']:.2f} "
        f"| {f['cold_posts_per_second']:,.0f} |",
        f"| warm: the same again | {f['warm_cpu_seconds']:.2f} "
        f"| {f['warm_posts_per_second']:,.0f} |",
        f"| cold minus warm (target: at most {TARGET_EXTRA_CPU} s) "
        f"| {f['extra_cpu_seconds']:.2f} | |",
        f"| before it: `from fanout_core import Fanout` | {f['import_cpu_seconds']:.2f} | |",
        "",
        "What the first fan-out still does: it imports "
        f"{imports_summary(f['imported'])} (`-X importtime`); from one profiled run (whose "
        f"counts leave out botocore, which the profiler loads first): "
        f"{profile_summary(f['profile'])}.",
    ]
