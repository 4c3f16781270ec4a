"""``fanout simulate``: the simulator (``fanout_core.simulate``) for one fan-out, or a sweep."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fanout_core.cli.arguments import non_negative, positive_int

if TYPE_CHECKING:
    from fanout_core.simulate import Outcome, Platform


def platform_of(args: argparse.Namespace) -> Platform:
    """The platform the options describe (AWS's defaults otherwise)."""
    from fanout_core.simulate import Platform

    platform = Platform()
    changes: dict[str, Any] = {"adaptive": not args.no_adaptive}
    for option, field in (
        ("memory_mb", "memory_mb"),
        ("concurrency", "concurrency"),
        ("max_posts_per_second", "max_posts_per_second"),
        ("max_workers", "sqs_max_batches"),
        ("account_rate", "account_rate"),
        ("function_timeout", "lambda_max_seconds"),
        ("batch_size", "batch_size"),
    ):
        if getattr(args, option) is not None:
            changes[field] = getattr(args, option)
    if args.post_latency_ms is not None:
        changes["post_latency"] = args.post_latency_ms / 1000
    if args.post_cpu_ms is not None:
        changes["post_cpu"] = args.post_cpu_ms / 1000
    return replace(platform, **changes)


def _as_dict(outcome: Outcome) -> dict[str, Any]:
    return {**asdict(outcome), "dollars": outcome.dollars(), "per_message": outcome.per_message}


def _simulate(args: argparse.Namespace) -> int:
    from fanout_core.simulate import STRATEGIES, simulate
    from fanout_core.simulate.sweep import best_table, plot, sweep, table

    platform = platform_of(args)
    strategies = [args.strategy] if args.strategy else list(STRATEGIES)
    if not set(strategies) <= set(STRATEGIES):
        raise SystemExit(f"fanout simulate: no model for {args.strategy!r}: {STRATEGIES}")
    if args.sweep:
        outcomes = sweep(platform, strategies=strategies)
    else:
        if args.connections is None or (args.room_size is None and not args.everyone):
            raise SystemExit("fanout simulate: give --connections and --room-size (or --everyone)")
        if args.room_size is not None and args.room_size > args.connections:
            raise SystemExit("fanout simulate: --room-size is larger than --connections")
        room = None if args.everyone else args.room_size
        outcomes = [simulate(s, args.connections, room, platform) for s in strategies]
    if args.json:
        print(json.dumps([_as_dict(o) for o in outcomes], indent=2))
    else:
        print(table(outcomes))
        if args.sweep:
            print("\nThe fastest strategy whose sending invocation answers within 29 s:\n")
            print(best_table(outcomes))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        text = f"# fanout simulate\n\n{table(outcomes)}\n\n{best_table(outcomes)}\n"
        (args.out / "simulation.md").write_text(text)
        try:
            plot(outcomes, args.out / "simulation.png")
        except ImportError:
            print("fanout simulate: no matplotlib (the bench extra): the plot is left out")
    return 0


def add_simulate_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``fanout simulate`` to ``subparsers`` (from ``ArgumentParser.add_subparsers``)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "simulate",
        help="model a fan-out at sizes that do not fit here",
        description="Model one message fanned out on AWS: API Gateway's account token bucket "
        "(10,000 posts/s, burst 5,000), Lambda's SQS scaling (5 batches, +300 a minute, "
        "1,000 at most), post latency and CPU, 1 MB DynamoDB pages. Prints the time to the "
        "last delivery, p50/p99 delivery latency, invocations and dollars per million "
        "messages, and marks a sending invocation past 29 s (API Gateway's integration "
        "timeout) or 15 min (Lambda's limit). docs/simulator.md names every figure's source.",
    )
    parser.add_argument("--connections", type=positive_int, metavar="N", help="live connections")
    audience = parser.add_mutually_exclusive_group()
    audience.add_argument("--room-size", type=positive_int, metavar="K", help="members")
    audience.add_argument("--everyone", action="store_true", help="a message to everyone")
    parser.add_argument("--strategy", help="one strategy (default: all four)")
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="10k, 100k and 1M connections; rooms of 10 to 1M and everyone",
    )
    parser.add_argument("--out", type=Path, metavar="DIR", help="write simulation.md and .png")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--memory-mb", type=positive_int, help="Lambda memory (default 256)")
    parser.add_argument("--concurrency", type=positive_int, help="posts in flight (default 32)")
    parser.add_argument(
        "--post-latency-ms", type=non_negative, help="a post's round trip (default 20)"
    )
    parser.add_argument(
        "--post-cpu-ms", type=non_negative, help="CPU per post at 1 vCPU (default 0.2)"
    )
    parser.add_argument(
        "--max-posts-per-second",
        type=positive_int,
        help="FANOUT_MAX_POSTS_PER_SECOND (default: no cap)",
    )
    parser.add_argument(
        "--max-workers",
        type=positive_int,
        help="the SQS mapping's MaximumConcurrency (default: none)",
    )
    parser.add_argument(
        "--batch-size", type=positive_int, help="the SQS mapping's BatchSize (default 10)"
    )
    parser.add_argument(
        "--account-rate", type=positive_int, help="API Gateway's account rate (default 10,000)"
    )
    parser.add_argument(
        "--no-adaptive", action="store_true", help="without the adaptive window (AIMD)"
    )
    parser.add_argument(
        "--function-timeout",
        type=non_negative,
        metavar="SECONDS",
        help="the sending function's Timeout, where Lambda stops a direct fan-out "
        "(default 900, Lambda's most; template.yaml sets 29)",
    )
    parser.set_defaults(run=_simulate)
    return parser
