"""The ``fanout`` command: table management, the local WebSocket API and the demo."""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Sequence

from fanout_core.cli.arguments import Parser
from fanout_core.cli.cost import add_cost_command
from fanout_core.cli.failures import Target, explain, refuse_unset_table, target_of
from fanout_core.cli.local import DEV_ISSUER, add_local_commands
from fanout_core.cli.publish import add_publish_commands
from fanout_core.cli.signin import add_token_command
from fanout_core.cli.simulate import add_simulate_command

__all__ = [
    "add_cost_command",
    "add_local_commands",
    "add_publish_commands",
    "add_simulate_command",
    "add_token_command",
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


def version() -> str:
    """The installed package's version, from its metadata (pyproject.toml's, when built)."""
    import fanout_core

    return str(fanout_core.__version__)


def add_env_file_option(parser: argparse.ArgumentParser) -> None:
    """``--env-file FILE``, for the commands that read the table's settings."""
    parser.add_argument(
        "--env-file",
        metavar="FILE",
        help="read FANOUT_* and AWS_* variables from FILE (as `fanout serve --env-file` writes "
        "it) over the environment, for this command only",
    )
    parser.set_defaults(needs_table=True)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``fanout``."""
    parser = Parser(
        prog="fanout",
        description="Real-time WebSocket fan-out on AWS: manage the table, run it locally.",
        epilog="Settings come from the environment: FANOUT_TABLE, FANOUT_STRATEGY, "
        "AWS_ENDPOINT_URL_DYNAMODB (or AWS_ENDPOINT_URL), AWS_REGION, ... (docs/"
        "configuration.md). Without FANOUT_TABLE and an endpoint, the commands that use the "
        "table refuse to run: run the `export` line `fanout serve` prints, or set FANOUT_TABLE.",
    )
    parser.add_argument("--version", action="version", version=f"fanout {version()}")
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
    add_env_file_option(create)
    describe = table_commands.add_parser(
        "describe",
        help="print the table's keys, index, billing mode and TTL as JSON",
        description="Print the table's keys, index, billing mode, item count and TTL as JSON.",
    )
    describe.set_defaults(run=_table_describe)
    add_env_file_option(describe)
    add_local_commands(commands)
    add_token_command(commands, DEV_ISSUER)
    add_publish_commands(commands, add_env_file_option)
    add_cost_command(commands)
    add_simulate_command(commands)
    return parser


def _target(args: argparse.Namespace) -> Target | None:
    """Where the command went, for its error line (None where that is not the table)."""
    endpoint = getattr(args, "dynamodb_endpoint", None)
    if args.command == "serve" and not (endpoint or os.environ.get("AWS_ENDPOINT_URL_DYNAMODB")):
        return None  # the embedded one
    if not getattr(args, "needs_table", False) and args.command != "serve":
        return None
    try:
        return target_of(endpoint_option=endpoint)
    except Exception:  # its settings are what failed: the error says which
        return None


def _needs_local_extra(error: ImportError) -> int:
    print(
        f"fanout: {error.name or 'a module'} is missing: install the local extra "
        "(pip install 'fanout-core[local]', or `make demo`)",
        file=sys.stderr,
    )
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fanout`` console script: a failure is one line and exit code 2."""
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "env_file", None):
            from fanout_core.cli.envfile import read_env_file

            os.environ.update(read_env_file(args.env_file))
        if getattr(args, "needs_table", False):
            refuse_unset_table()
        code: int = args.run(args)
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        if getattr(args, "debug", False):
            traceback.print_exc()
        if isinstance(error, ImportError) and args.command in ("serve", "demo", "token"):
            return _needs_local_extra(error)
        if isinstance(error, BrokenPipeError):
            # `fanout members lobby | head -1`: the reader has what it wanted. Python would
            # fail again flushing stdout at exit (its docs' way out).
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        serving = args.command == "serve"
        print(f"fanout: {explain(error, _target(args), serving=serving)}", file=sys.stderr)
        return 2
    return code
