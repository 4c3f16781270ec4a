"""``fanout cost``: the cost model (``fanout_core.cost``) as a table or JSON."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

from fanout_core.cli.arguments import non_negative, options, positive_int


def _cost(args: argparse.Namespace) -> int:
    from fanout_core.cost import Workload, cost_table, format_table

    workload = Workload(
        **options(args, "connections", "room_size", "messages_per_day", "everyone"),
        **options(args, "frame_bytes", "concurrency", "lambda_memory_mb", "segments"),
        post_latency_seconds=args.post_latency_ms / 1000,
        post_cpu_seconds=args.post_cpu_ms / 1000,
    )
    costs = cost_table(workload)
    if args.json:
        data: list[dict[str, Any]] = [
            {
                **asdict(c),
                "per_million": c.per_million,
                "per_day": c.per_message * args.messages_per_day,
            }
            for c in costs
        ]
        print(json.dumps(data, indent=2))
    else:
        print(format_table(workload, costs))
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
    parser.add_argument("--connections", type=positive_int, required=True, metavar="N")
    parser.add_argument(
        "--room-size", type=positive_int, required=True, metavar="K", help="members per room"
    )
    parser.add_argument("--messages-per-day", type=non_negative, required=True, metavar="M")
    parser.add_argument("--everyone", action="store_true", help="each message to everyone")
    parser.add_argument("--frame-bytes", type=positive_int, default=200, help="default 200")
    parser.add_argument("--concurrency", type=positive_int, default=32, help="default 32")
    parser.add_argument("--post-latency-ms", type=non_negative, default=20.0, help="default 20")
    parser.add_argument(
        "--post-cpu-ms", type=non_negative, default=0.2, help="CPU per post (default 0.2)"
    )
    parser.add_argument("--lambda-memory-mb", type=positive_int, default=256, help="default 256")
    parser.add_argument("--segments", type=positive_int, default=4, help="parallel_scan's")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(run=_cost)
    return parser
