"""The sweep: every strategy at 10k, 100k and 1M connections, rooms of 10 to 1M and everyone."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from fanout_core.simulate.model import DIRECT, STRATEGIES, simulate
from fanout_core.simulate.outcome import Outcome
from fanout_core.simulate.platform import Platform

SIZES = (10_000, 100_000, 1_000_000)
ROOMS = (10, 100, 1_000, 10_000, 100_000, 1_000_000)


def sweep(
    platform: Platform | None = None,
    sizes: Iterable[int] = SIZES,
    rooms: Iterable[int | None] = (*ROOMS, None),
    strategies: Iterable[str] = STRATEGIES,
) -> list[Outcome]:
    """Every strategy for every size and every room that fits in it (None: everyone)."""
    platform = platform or Platform()
    rooms = tuple(rooms)
    return [
        simulate(strategy, n, room, platform)
        for n in sizes
        for room in rooms
        if room is None or room <= n
        for strategy in strategies
    ]


def flags(outcome: Outcome) -> str:
    """Where the sending invocation outlives a limit."""
    marks = []
    if outcome.over_integration_timeout:
        marks.append("> 29 s")
    if outcome.over_lambda_limit:
        marks.append("cut by Lambda")
    return ", ".join(marks)


def table(outcomes: list[Outcome]) -> str:
    """A Markdown table, one row per outcome."""
    lines = [
        "| connections | audience | strategy | last delivery s | p50 s | p99 s | sender s "
        "| invocations | peak workers | 429s | $ / million msgs | limits |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for o in outcomes:
        lines.append(
            f"| {o.connections:,} | {o.audience_label} | {o.strategy} | {o.seconds:,.2f} "
            f"| {o.p50:,.2f} | {o.p99:,.2f} | {o.sender_seconds:,.2f} | {o.invocations:,} "
            f"| {o.peak_workers:,} | {o.throttled:,.0f} | {o.per_message * 1e6:,.2f} "
            f"| {flags(o)} |"
        )
    return "\n".join(lines)


def best(outcomes: list[Outcome]) -> list[tuple[int, str, Outcome, str]]:
    """Per size and audience: the fastest strategy whose sender answers within 29 s.

    With the reason: which direct strategies the integration timeout rules out.
    """
    groups: dict[tuple[int, str], list[Outcome]] = {}
    for o in outcomes:
        groups.setdefault((o.connections, o.audience_label), []).append(o)
    picks = []
    for (n, label), group in groups.items():
        fine = [o for o in group if not o.over_integration_timeout and not o.over_lambda_limit]
        pick = min(fine or group, key=lambda o: (round(o.seconds, 1), o.per_message))
        out = [o.strategy for o in group if o.strategy in DIRECT and o.over_integration_timeout]
        why = f"{', '.join(out)} pass 29 s" if out else ""
        picks.append((n, label, pick, why))
    return picks


def best_table(outcomes: list[Outcome]) -> str:
    """A Markdown table of ``best``."""
    lines = [
        "| connections | audience | strategy | last delivery s | $ / million msgs | why |",
        "|---:|---|---|---:|---:|---|",
    ]
    for n, label, o, why in best(outcomes):
        lines.append(
            f"| {n:,} | {label} | `{o.strategy}` | {o.seconds:,.2f} "
            f"| {o.per_message * 1e6:,.2f} | {why} |"
        )
    return "\n".join(lines)


def plot(outcomes: list[Outcome], path: Path) -> None:
    """Time to the last delivery against audience size, one panel per size (matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({o.connections for o in outcomes})
    figure, axes = plt.subplots(1, len(sizes), figsize=(5 * len(sizes), 4), squeeze=False)
    for axis, n in zip(axes[0], sizes, strict=True):
        for strategy in STRATEGIES:
            points = sorted(
                (o.audience, o.seconds)
                for o in outcomes
                if o.connections == n and o.strategy == strategy and o.audience_label != "everyone"
            )
            if points:
                axis.plot(*zip(*points, strict=True), marker="o", label=strategy)
        axis.axhline(29, color="red", linestyle="--", linewidth=1, label="29 s integration timeout")
        axis.axhline(900, color="black", linestyle=":", linewidth=1, label="15 min Lambda limit")
        axis.set(xscale="log", yscale="log", title=f"{n:,} connections", xlabel="room size")
        axis.set_ylabel("seconds to the last delivery")
        axis.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=7)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
