"""The ``fanout`` command: table management, the local WebSocket API and the demo."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from fanout_core.errors import FanoutError


def _options(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The parsed values of ``names``, as keyword arguments of the same names."""
    return {name: getattr(args, name) for name in names}


def _table_create(args: argparse.Namespace) -> int:
    from fanout_core.config import FanoutConfig
    from fanout_core.table import create_table

    print(create_table(FanoutConfig.from_env()).describe())
    return 0


def _table_describe(args: argparse.Namespace) -> int:
    from fanout_core.config import FanoutConfig
    from fanout_core.table import describe_table

    print(json.dumps(describe_table(FanoutConfig.from_env()), indent=2, default=str))
    return 0


def _serve(args: argparse.Namespace) -> int:
    import asyncio

    from fanout_core.local.serve import LocalDeployment, serve_forever

    deployment = LocalDeployment(
        **_options(args, "host", "port", "management_port", "stage", "handlers"),
        **_options(args, "dynamodb_endpoint", "strategy", "idle_timeout", "max_lifetime"),
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_forever(deployment, lambda line: print(line, flush=True)))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from fanout_core.local.demo import run_demo

    return run_demo(args.connect, args.send, args.strategy)


def _needs_local_extra(error: ImportError) -> int:
    print(
        f"fanout: {error.name or 'a module'} is missing: install the local extra "
        "(pip install 'fanout-core[local]', or `make demo`)",
        file=sys.stderr,
    )
    return 2


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``fanout``."""
    parser = argparse.ArgumentParser(
        prog="fanout",
        description="Real-time WebSocket fan-out on AWS: manage the table, run it locally.",
        epilog="Settings come from the environment: FANOUT_TABLE, FANOUT_STRATEGY, "
        "FANOUT_TTL_SECONDS, FANOUT_CONCURRENCY, AWS_ENDPOINT_URL_DYNAMODB (or "
        "AWS_ENDPOINT_URL), AWS_REGION. See README.md.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    table = commands.add_parser("table", help="create or describe the DynamoDB table")
    table_commands = table.add_subparsers(dest="table_command", required=True, metavar="ACTION")
    create = table_commands.add_parser(
        "create",
        help="create the table, its index and TTL (idempotent)",
        description="Create the table with the audience index and TTL on expires_at, "
        "PAY_PER_REQUEST. Succeeds when it already exists.",
    )
    create.set_defaults(run=_table_create)
    describe = table_commands.add_parser(
        "describe",
        help="print the table's keys, index, billing mode and TTL as JSON",
        description="Print the table's keys, index, billing mode, item count and TTL as JSON.",
    )
    describe.set_defaults(run=_table_describe)

    serve = commands.add_parser(
        "serve",
        help="run a local API Gateway WebSocket API in front of the handlers",
        description="A local stand-in for an API Gateway WebSocket API: real WebSocket clients "
        "connect, each gets a connection id, $connect/$disconnect/message events go to the "
        "handlers (routed by $request.body.action), and the Management API they post to "
        "answers 410 for gone connections. Data: an embedded moto server unless "
        "--dynamodb-endpoint (or AWS_ENDPOINT_URL_DYNAMODB) names one; the table is created "
        "if missing. With FANOUT_STRATEGY=sqs_batched it also runs the SQS worker.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    serve.add_argument("--port", type=int, default=8765, help="WebSocket port (0: any free)")
    serve.add_argument(
        "--management-port", type=int, default=0, help="Management API port (default: any free)"
    )
    serve.add_argument("--stage", default="local", help="stage name (default %(default)s)")
    serve.add_argument(
        "--handlers",
        default="fanout_core.handlers",
        metavar="MODULE",
        help="module with connect, disconnect, send_message, ... or websocket "
        "(default %(default)s)",
    )
    serve.add_argument("--dynamodb-endpoint", metavar="URL", help="dynalite, or real DynamoDB")
    serve.add_argument("--strategy", help="FANOUT_STRATEGY for this run")
    serve.add_argument(
        "--idle-timeout", type=float, default=600, help="seconds (default %(default)s, as AWS)"
    )
    serve.add_argument(
        "--max-lifetime", type=float, default=7200, help="seconds (default %(default)s, as AWS)"
    )
    serve.set_defaults(run=_serve)

    demo = commands.add_parser(
        "demo",
        help="the chat walkthrough with real WebSocket clients",
        description="N real WebSocket clients connect to a local `fanout serve`, M messages "
        "are sent and delivered, the last client drops without telling, and the next fan-out "
        "meets its 410 GoneException and deletes its row. Exits 1 if an inbox misses a "
        "message or a gone row is left.",
    )
    demo.add_argument("--connect", type=int, default=2, metavar="N", help="clients")
    demo.add_argument("--send", type=int, default=1, metavar="M", help="messages")
    demo.add_argument("--strategy", help="full_scan, gsi_query, parallel_scan or sqs_batched")
    demo.set_defaults(run=_demo)

    add_cost_command(commands)
    return parser


# -- fanout cost -----------------------------------------------------------------------


def _cost(args: argparse.Namespace) -> int:
    from fanout_core.cost import Workload, cost_table, format_table

    workload = Workload(
        **_options(args, "connections", "room_size", "messages_per_day", "everyone"),
        **_options(args, "frame_bytes", "concurrency", "lambda_memory_mb", "segments"),
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


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative(raw: str) -> float:
    value = float(raw)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


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
    parser.add_argument("--connections", type=_positive_int, required=True, metavar="N")
    parser.add_argument(
        "--room-size", type=_positive_int, required=True, metavar="K", help="members per room"
    )
    parser.add_argument("--messages-per-day", type=_non_negative, required=True, metavar="M")
    parser.add_argument("--everyone", action="store_true", help="each message to everyone")
    parser.add_argument("--frame-bytes", type=_positive_int, default=200, help="default 200")
    parser.add_argument("--concurrency", type=_positive_int, default=32, help="default 32")
    parser.add_argument("--post-latency-ms", type=_non_negative, default=20.0, help="default 20")
    parser.add_argument(
        "--post-cpu-ms", type=_non_negative, default=0.2, help="CPU per post (default 0.2)"
    )
    parser.add_argument("--lambda-memory-mb", type=_positive_int, default=256, help="default 256")
    parser.add_argument("--segments", type=_positive_int, default=4, help="parallel_scan's")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(run=_cost)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fanout`` console script."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except ImportError as error:
        if args.command in ("serve", "demo"):
            return _needs_local_extra(error)
        raise
    except FanoutError as error:
        print(f"fanout: {error}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
