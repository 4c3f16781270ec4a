"""The ``fanout`` command: table management, the local WebSocket API and the demo."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence

from fanout_core.cli.arguments import options
from fanout_core.cli.cost import add_cost_command
from fanout_core.cli.publish import add_publish_commands
from fanout_core.cli.simulate import add_simulate_command
from fanout_core.errors import FanoutError

__all__ = [
    "add_cost_command",
    "add_publish_commands",
    "add_simulate_command",
    "build_parser",
    "main",
]


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
        **options(args, "host", "port", "management_port", "stage", "handlers", "authorizer"),
        **options(args, "dynamodb_endpoint", "strategy", "idle_timeout", "max_lifetime"),
        settings=access_settings(args),
        console=not args.no_console,
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_forever(deployment, lambda line: print(line, flush=True)))
    return 0


def access_settings(args: argparse.Namespace) -> dict[str, str]:
    """The FANOUT_* variables the access options ask for (checked as the handlers read them)."""
    from fanout_core.config import FanoutConfig

    settings = {}
    if args.policy:
        settings["FANOUT_POLICY"] = args.policy
    if getattr(args, "rate_limit", None):
        settings["FANOUT_RATE_LIMIT"] = args.rate_limit
    if getattr(args, "presence_events", False):
        settings["FANOUT_PRESENCE_EVENTS"] = "true"
    if getattr(args, "history", None) is not None:
        settings["FANOUT_HISTORY_SECONDS"] = str(args.history)
    config = FanoutConfig.from_env(settings)  # a bad value fails here, before anything runs
    from fanout_core.policy import load_policy

    load_policy(config.policy)
    return settings


def _demo(args: argparse.Namespace) -> int:
    if args.ui:
        import asyncio

        from fanout_core.local.demo_ui import demo_deployment, serve_demo

        deployment = demo_deployment(
            args.connect, args.send, args.strategy, args.host, args.port, access_settings(args)
        )
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_demo(deployment, lambda line: print(line, flush=True)))
        return 0
    from fanout_core.local.demo import run_demo

    return run_demo(args.connect, args.send, args.strategy, settings=access_settings(args))


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
        "AWS_ENDPOINT_URL), AWS_REGION. See docs/configuration.md.",
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
    serve.add_argument(
        "--policy",
        metavar="NAME_OR_MODULE:FUNCTION",
        help="who may connect, join, send and ask presence: open (default), authenticated, "
        "owner_rooms, or package.module:function (FANOUT_POLICY)",
    )
    serve.add_argument(
        "--rate-limit", metavar="COUNT/SECONDS", help="per connection (FANOUT_RATE_LIMIT)"
    )
    serve.add_argument(
        "--presence-events",
        action="store_true",
        help="post presence.join / presence.leave to rooms (FANOUT_PRESENCE_EVENTS)",
    )
    serve.add_argument(
        "--history",
        type=int,
        metavar="SECONDS",
        help="keep each room's frames this long, numbered, for resume (FANOUT_HISTORY_SECONDS)",
    )
    serve.add_argument(
        "--authorizer",
        metavar="MODULE:FUNCTION",
        help="a $connect REQUEST authorizer: its principalId and context reach every event",
    )
    serve.add_argument(
        "--no-console", action="store_true", help="do not serve the browser console on the port"
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
    demo.add_argument(
        "--policy",
        metavar="NAME_OR_MODULE:FUNCTION",
        help="run under this policy, each client with a principal and a rooms claim; one "
        "more stage shows a join it denies",
    )
    demo.add_argument(
        "--ui",
        action="store_true",
        help="serve the console and step through the stages in the browser, with clients "
        "of the page, instead of printing them",
    )
    demo.add_argument("--host", default="127.0.0.1", help="with --ui: address to bind")
    demo.add_argument("--port", type=int, default=8765, help="with --ui: port (0: any free)")
    demo.set_defaults(run=_demo)

    add_publish_commands(commands)
    add_cost_command(commands)
    add_simulate_command(commands)
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
