"""The ``fanout`` command: ``fanout table create`` and ``fanout table describe``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from fanout_core.errors import FanoutError


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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``fanout``."""
    parser = argparse.ArgumentParser(
        prog="fanout",
        description="Real-time WebSocket fan-out on AWS: manage the table, run it locally.",
        epilog="Settings come from the environment: FANOUT_TABLE, FANOUT_TTL_SECONDS, "
        "AWS_ENDPOINT_URL_DYNAMODB (or AWS_ENDPOINT_URL), AWS_REGION.",
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fanout`` console script."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except FanoutError as error:
        print(f"fanout: {error}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
