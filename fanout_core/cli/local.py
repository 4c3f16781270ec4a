"""``fanout serve`` and ``fanout demo``: the local WebSocket API, and the walkthrough on it."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fanout_core.cli.arguments import count, options, port, positive_int
from fanout_core.cli.signin import (
    add_sign_in_options,
    banner_lines,
    dev_issuer,
    sign_in_settings,
)

if TYPE_CHECKING:
    from fanout_core.local.serve import LocalDeployment

# The same ports on every run, so the `export` line `fanout serve` prints stays the same.
WEBSOCKET_PORT, MANAGEMENT_PORT, DYNAMODB_PORT = 8765, 8766, 8767
# `fanout serve --dev-auth`'s issuer with the default host and port: `fanout token`'s default.
DEV_ISSUER = f"http://127.0.0.1:{WEBSOCKET_PORT}/_auth"


def publish_credentials(args: argparse.Namespace) -> dict[str, str] | None:
    """--sign-publish: the keys POST /publish checks signatures against (this shell's)."""
    if not getattr(args, "sign_publish", False):
        return None
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not key or not secret:
        raise SystemExit("--sign-publish needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY set")
    return {key: secret}


def _serve(args: argparse.Namespace) -> int:
    import asyncio

    from fanout_core.local.serve import LocalDeployment

    settings = {**access_settings(args), **sign_in_settings(args)}
    deployment = LocalDeployment(
        **options(args, "host", "port", "management_port", "dynamodb_port", "stage"),
        **options(args, "handlers", "authorizer", "dynamodb_endpoint", "strategy"),
        **options(args, "idle_timeout", "max_lifetime"),
        settings=settings,
        console=not args.no_console,
        dev_issuer=dev_issuer(args),
        publish_credentials=publish_credentials(args),
        # Each invocation's EMF documents, as Lambda would log them, on this terminal.
        print_metrics=(lambda line: print(line, flush=True)) if args.metrics else None,
    )
    write = None
    if args.write_env_file:
        from fanout_core.cli.envfile import write_env_file

        def write(variables: dict[str, str]) -> str:
            write_env_file(args.write_env_file, variables)
            return str(args.write_env_file)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_forever(deployment, lambda line: print(line, flush=True), write))
    return 0


async def serve_forever(
    deployment: LocalDeployment,
    announce: Callable[[str], None],
    env_file: Callable[[dict[str, str]], str] | None = None,
) -> None:
    """Run until cancelled (Ctrl-C), announcing what runs where once ready.

    ``env_file`` writes the variables to a file and answers its name, for the banner.
    """
    import asyncio

    async with deployment:
        for line in banner(deployment):
            announce(line)
        variables = deployment.variables()
        local_keys = "AWS_ACCESS_KEY_ID" in variables
        announce("to publish from another shell (fanout publish, or Fanout.from_env()), paste:")
        announce(f"  export {deployment.environment()}")
        if local_keys:
            announce(
                "  (this sets AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY to `local`: until you "
                "unset them, that shell's own AWS credentials are hidden)"
            )
        if env_file is not None:
            path = env_file(variables)
            announce(f"or leave the shell as it is: the same variables are in {path}, for")
            announce(f"  fanout publish --env-file {path} ...  or  env $(cat {path}) python app.py")
        elif local_keys:
            announce(
                "  to leave the shell as it is, start with --env-file FILE and run "
                "`fanout publish --env-file FILE ...`"
            )
        announce("ready")
        await asyncio.Event().wait()


def banner(deployment: LocalDeployment) -> list[str]:
    """What runs where, one ``name: value`` line each."""
    config = deployment.config
    assert config is not None
    lines = []
    if deployment.console:
        lines.append(f"console:        {deployment.console_url}")
    lines.append(f"WebSocket API:  {deployment.ws_url}")
    lines.append(f"Management API: {deployment.management_url}")
    signed = " (SigV4 with this shell's AWS keys)" if deployment.publish_credentials else ""
    lines.append(f"publish (HTTP): POST {deployment.publish_url}{signed}")
    lines.append(f"DynamoDB:       {os.environ['AWS_ENDPOINT_URL_DYNAMODB']}")
    lines.append(f"table:          {config.table}")
    lines.append(f"strategy:       {config.strategy}")
    if deployment.authorizer is not None:
        lines.append(f"authorizer:     {getattr(deployment.authorizer, '__qualname__', '?')}")
    lines += banner_lines(deployment, DEV_ISSUER)
    lines.append(f"policy:         {config.policy}")
    if config.rate_limit is not None:
        lines.append(f"rate limit:     {config.rate_limit} per connection")
    if config.history_seconds:
        lines.append(
            f"history:        {config.history_seconds} s, up to {config.history_max} "
            "frames per room (resume with the history action)"
        )
    if config.presence_events:
        lines.append("presence:       events on (presence.join, presence.leave)")
    if deployment.queue_url:
        lines.append(f"SQS queue:      {deployment.queue_url}")
    return lines


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


POLICY_HELP = (
    "who may connect, join, send and ask presence: open, authenticated, owner_rooms, or "
    "package.module:function (sets FANOUT_POLICY; default: FANOUT_POLICY, else open)"
)
STRATEGY_HELP = (
    "full_scan, gsi_query, parallel_scan or sqs_batched (default: FANOUT_STRATEGY, else gsi_query)"
)


def add_local_commands(subparsers: Any) -> None:
    """Add ``fanout serve`` and ``fanout demo``."""
    serve: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="run a local API Gateway WebSocket API in front of the handlers",
        description="A local stand-in for an API Gateway WebSocket API: real WebSocket clients "
        "connect, each gets a connection id, $connect/$disconnect/message events go to the "
        "handlers (routed by $request.body.action), and the Management API they post to "
        "answers 410 for gone connections. Data: an embedded moto server unless "
        "--dynamodb-endpoint (or AWS_ENDPOINT_URL_DYNAMODB) names one; the table is created "
        "if missing. With FANOUT_STRATEGY=sqs_batched it also runs the SQS worker. The ports "
        "are the same on every run, so is the `export` line it prints.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind")
    serve.add_argument(
        "--port",
        type=port,
        metavar="PORT",
        default=WEBSOCKET_PORT,
        help="WebSocket API and console port; 0: any free",
    )
    serve.add_argument(
        "--management-port",
        type=port,
        metavar="PORT",
        default=MANAGEMENT_PORT,
        help="Management API port; 0: any free",
    )
    serve.add_argument(
        "--dynamodb-port",
        type=port,
        metavar="PORT",
        default=DYNAMODB_PORT,
        help="the embedded DynamoDB's (and SQS's) port, unused with --dynamodb-endpoint; "
        "0: any free",
    )
    serve.add_argument("--stage", default="local", help="stage name, the URL's path")
    serve.add_argument(
        "--handlers",
        default="fanout_core.handlers",
        metavar="MODULE",
        help="module with connect, disconnect, send_message, ... or websocket",
    )
    serve.add_argument(
        "--dynamodb-endpoint",
        metavar="URL",
        help="use this DynamoDB (dynalite, DynamoDB Local, AWS) instead of the embedded one "
        "(default: AWS_ENDPOINT_URL_DYNAMODB, if set)",
    )
    serve.add_argument("--strategy", help=STRATEGY_HELP)
    serve.add_argument(
        "--idle-timeout", type=float, default=600, metavar="SECONDS", help="as AWS's"
    )
    serve.add_argument(
        "--max-lifetime", type=float, default=7200, metavar="SECONDS", help="as AWS's"
    )
    serve.add_argument("--policy", metavar="NAME_OR_MODULE:FUNCTION", help=POLICY_HELP)
    serve.add_argument(
        "--rate-limit",
        metavar="COUNT/SECONDS",
        help="per connection, e.g. 10/1 (sets FANOUT_RATE_LIMIT; default: off)",
    )
    serve.add_argument(
        "--presence-events",
        action="store_true",
        help="post presence.join / presence.leave to rooms (sets FANOUT_PRESENCE_EVENTS)",
    )
    serve.add_argument(
        "--history",
        type=int,
        metavar="SECONDS",
        help="keep each room's frames this long, numbered, for resume (sets "
        "FANOUT_HISTORY_SECONDS; default: off)",
    )
    serve.add_argument(
        "--authorizer",
        metavar="MODULE:FUNCTION",
        help="a $connect REQUEST authorizer: its principalId and context reach every event",
    )
    add_sign_in_options(serve)
    serve.add_argument(
        "--sign-publish",
        action="store_true",
        help="POST /publish takes only requests signed (SigV4) with this shell's AWS keys",
    )
    serve.add_argument(
        "--no-console", action="store_true", help="do not serve the browser console on the port"
    )
    serve.add_argument(
        "--metrics",
        action="store_true",
        help="print each invocation's metrics: the CloudWatch EMF document it would write on "
        "Lambda (the console shows them either way)",
    )
    serve.add_argument(
        "--env-file",
        dest="write_env_file",
        metavar="FILE",
        help="also write the `export` line's variables to FILE (readable by you only), for "
        "`fanout publish --env-file FILE` or `env $(cat FILE) python app.py`",
    )
    serve.set_defaults(run=_serve)

    demo: argparse.ArgumentParser = subparsers.add_parser(
        "demo",
        help="the chat walkthrough with real WebSocket clients",
        description="N real WebSocket clients connect to a local `fanout serve`, M messages "
        "are sent and delivered, the last client drops without telling, and the next fan-out "
        "meets its 410 GoneException and deletes the dropped client's rows. Exits 1 if an "
        "inbox misses a message or a row of the dropped client is left.",
    )
    demo.add_argument(
        "--connect", type=positive_int, default=2, metavar="N", help="clients to connect"
    )
    demo.add_argument("--send", type=count, default=1, metavar="M", help="messages to send")
    demo.add_argument("--strategy", help=STRATEGY_HELP)
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
    demo.add_argument(
        "--port",
        type=port,
        metavar="PORT",
        default=WEBSOCKET_PORT,
        help="with --ui: port; 0: any free",
    )
    demo.set_defaults(run=_demo)
