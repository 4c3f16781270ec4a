"""``fanout publish`` and ``fanout members``: what backend code does, from a shell."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any


def _publish(args: argparse.Namespace) -> int:
    from fanout_core.fanout import Fanout

    raw = args.data
    try:
        if raw == "-":
            raw = sys.stdin.read()
        elif raw.startswith("@"):
            with open(raw[1:], encoding="utf-8") as source:
                raw = source.read()
        data = json.loads(raw, parse_constant=_not_json)
    except OSError as error:
        print(f"fanout: --data {args.data}: {error.strerror}", file=sys.stderr)
        return 2
    except ValueError as error:
        print(f"fanout: --data is not JSON: {error}", file=sys.stderr)
        return 2
    fanout = Fanout.from_env()
    try:
        result = fanout.publish(
            data,
            room=args.room,
            user=args.user,
            connections=args.connection,
            exclude=args.exclude or (),
            event=args.event,
            idempotency_key=args.id,
        )
    except (TypeError, ValueError) as error:
        print(f"fanout: {error}", file=sys.stderr)
        return 2
    finally:
        fanout.close()
    print(json.dumps(result.summary(), indent=2))
    return 1 if result.failed else 0


def _not_json(constant: str) -> Any:
    # Python's json reads NaN and Infinity; JSON has neither, and no client could parse them.
    raise ValueError(f"{constant} is not a JSON value")


def _members(args: argparse.Namespace) -> int:
    from fanout_core.fanout import Fanout

    fanout = Fanout.from_env()
    try:
        for member in fanout.members(args.room):
            print(
                json.dumps({"connection_id": member.connection_id, "principal": member.principal})
            )
    except ValueError as error:
        print(f"fanout: {error}", file=sys.stderr)
        return 2
    finally:
        fanout.close()
    return 0


def add_publish_commands(
    subparsers: Any, add_env_file_option: Callable[[argparse.ArgumentParser], None]
) -> None:
    """Add ``fanout publish`` and ``fanout members``."""
    publish: argparse.ArgumentParser = subparsers.add_parser(
        "publish",
        help="publish JSON to a room, a user, connections or everyone, as backend code does",
        description="Publish --data (any JSON) through the configured strategy, as "
        "Fanout.publish does: the frame's `from` is null. Prints the result as JSON; exits 1 "
        "if a post failed, 2 on bad input. Settings from the environment (FANOUT_TABLE, "
        "AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI, ...).",
    )
    audience = publish.add_mutually_exclusive_group(required=True)
    audience.add_argument("--room", metavar="ROOM", help="every member of the room")
    audience.add_argument("--user", metavar="PRINCIPAL", help="every live connection of a user")
    audience.add_argument(
        "--connection",
        metavar="ID",
        nargs="+",
        action="extend",
        help="connection ids: several after one flag, or the flag repeated",
    )
    audience.add_argument("--everyone", action="store_true", help="every live connection")
    publish.add_argument("--event", default="message", help="the frame's event name")
    publish.add_argument(
        "--id",
        metavar="KEY",
        help="an idempotency key: the same key again within FANOUT_DEDUP_SECONDS publishes "
        "nothing (the result says duplicate)",
    )
    publish.add_argument(
        "--exclude",
        metavar="ID",
        nargs="+",
        action="extend",
        help="connection ids to leave out, of any audience: several, or the flag repeated",
    )
    publish.add_argument(
        "--data",
        required=True,
        metavar="JSON",
        help="the payload, as JSON; - reads it from stdin, @FILE from a file",
    )
    publish.set_defaults(run=_publish)
    add_env_file_option(publish)
    members: argparse.ArgumentParser = subparsers.add_parser(
        "members",
        help="the live connections of a room and their principals, one JSON line each",
        description="Print each live connection of ROOM and its principal as a JSON line: "
        '{"connection_id": ..., "principal": ...}. Settings from the environment, as publish.',
    )
    members.add_argument("room", metavar="ROOM", help="the room's name, e.g. lobby")
    members.set_defaults(run=_members)
    add_env_file_option(members)
