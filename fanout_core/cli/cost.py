"""``fanout cost``: the cost model (``fanout_core.cost``) as a table or JSON."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from fanout_core.cli.arguments import non_negative, options, positive_int

RESUMES = (10, 100)  # frames per resume that --history prices

if TYPE_CHECKING:
    from fanout_core.cost import StrategyCost, Workload


def _cost(args: argparse.Namespace) -> int:
    from fanout_core.cost import Workload, cost_table, resume_cost

    workload = Workload(
        **options(args, "connections", "room_size", "messages_per_day", "everyone"),
        **options(args, "frame_bytes", "concurrency", "lambda_memory_mb", "segments"),
        post_latency_seconds=args.post_latency_ms / 1000,
        post_cpu_seconds=args.post_cpu_ms / 1000,
        rate_limit=args.rate_limit,
        history=args.history,
        idempotency=args.idempotency,
    )
    costs = cost_table(workload)
    resumes = [resume_cost(frames, workload) for frames in RESUMES] if args.history else []
    if args.json:
        data: list[dict[str, Any]] = [
            {
                **asdict(c),
                "per_million": c.per_million,
                "per_day": c.per_message * args.messages_per_day,
            }
            for c in costs
        ]
        if resumes:
            data.append({"resumes": [asdict(r) for r in resumes]})
        print(json.dumps(data, indent=2))
    else:
        print(format_table(workload, costs))
        for r in resumes:
            print(
                f"A resume of {r.frames} frames: {r.requests} DynamoDB read requests, "
                f"{r.read_units:g} read units (strongly consistent), {r.posts} posts, "
                f"{r.lambda_gb_seconds:.4f} Lambda GB-s: ${r.dollars * 1e6:,.2f} per million "
                "resumes."
            )
    return 0


def add_cost_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``fanout cost`` to ``subparsers`` (from ``ArgumentParser.add_subparsers``)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "cost",
        help="dollars per million messages for each strategy",
        description="Model the cost of fanning messages out with each strategy: DynamoDB read "
        "units (from item sizes, 0.5 per 4 KB per page), API Gateway messages, Lambda time and "
        "requests, SQS requests. Prices: us-east-1 on demand, without free tiers "
        "(fanout_core/cost.py cites them).",
    )
    parser.add_argument(
        "--connections", type=positive_int, required=True, metavar="N", help="live connections"
    )
    parser.add_argument(
        "--room-size", type=positive_int, required=True, metavar="K", help="members per room"
    )
    parser.add_argument(
        "--messages-per-day", type=non_negative, required=True, metavar="M", help="published"
    )
    parser.add_argument("--everyone", action="store_true", help="each message to everyone")
    parser.add_argument("--frame-bytes", type=positive_int, default=200, help="bytes per frame")
    parser.add_argument("--concurrency", type=positive_int, default=32, help="posts in flight")
    parser.add_argument(
        "--post-latency-ms", type=non_negative, default=20.0, help="a post's round trip"
    )
    parser.add_argument("--post-cpu-ms", type=non_negative, default=0.2, help="CPU per post")
    parser.add_argument("--lambda-memory-mb", type=positive_int, default=256, help="MB")
    parser.add_argument("--segments", type=positive_int, default=4, help="parallel_scan's")
    parser.add_argument(
        "--rate-limit", action="store_true", help="with FANOUT_RATE_LIMIT: a write per send"
    )
    parser.add_argument(
        "--history",
        action="store_true",
        help="with FANOUT_HISTORY_SECONDS: a counter update and a frame put per message, "
        "and what a resume of 10 and 100 frames costs",
    )
    parser.add_argument(
        "--idempotency", action="store_true", help="each message with an idempotency key"
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(run=_cost)
    return parser


def format_table(workload: Workload, costs: list[StrategyCost]) -> str:
    """A Markdown table of ``costs``."""
    audience = "everyone" if workload.everyone else f"a room of {workload.room_size:,}"
    lines = [
        f"{workload.connections:,} connections, each message to {audience}, "
        f"{workload.messages_per_day:,.0f} messages a day (us-east-1, on demand, no free tier)",
        "",
        "| strategy | read units / msg | write units / msg | DynamoDB read requests / msg "
        "| posts / msg "
        "| SQS requests / msg | Lambda GB-s / msg | DynamoDB $ | API Gateway $ | Lambda $ | SQS $ "
        "| $ / million msgs | $ / day |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in costs:
        per_million = {k: v * 1e6 for k, v in c.dollars.items()}
        lines.append(
            f"| {c.strategy} | {c.reads.read_units:,.1f} | {c.write_units:,.1f} "
            f"| {c.reads.requests:,} | {c.posts:,} "
            f"| {c.sqs_requests:,} | {c.lambda_gb_seconds:.4f} | {per_million['dynamodb']:,.2f} "
            f"| {per_million['apigateway']:,.2f} | {per_million['lambda']:,.2f} "
            f"| {per_million['sqs']:,.2f} | {c.per_million:,.2f} "
            f"| {c.per_message * workload.messages_per_day:,.2f} |"
        )
    from fanout_core.cost import connection_minutes_per_day

    minutes, dollars = connection_minutes_per_day(workload)
    lines += [
        "",
        "Service columns are dollars per million messages. Connection minutes, the same for every "
        f"strategy: {minutes:,.0f} a day if all stay connected, ${dollars:,.2f} a day.",
    ]
    return "\n".join(lines)
