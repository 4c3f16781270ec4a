"""Sign-in on the command line: ``fanout serve``'s JWT options and ``fanout token``."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

LIBRARY_AUTHORIZER = "fanout_core.handlers:authorizer"
RESERVED_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "nbf")
_DURATION = re.compile(r"\s*(\d+)\s*([smhd]?)\s*")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_TTL = 30 * 86400


def duration(raw: str) -> int:
    """An argparse type: ``90``, ``90s``, ``15m``, ``1h`` or ``2d``, in seconds."""
    match = _DURATION.fullmatch(raw)
    if match is None:
        raise argparse.ArgumentTypeError(f"expected a duration like 90s, 15m, 1h or 2d: {raw!r}")
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if not 1 <= seconds <= MAX_TTL:
        raise argparse.ArgumentTypeError("from 1 second to 30 days")
    return seconds


def claim(raw: str) -> tuple[str, Any]:
    """An argparse type: ``NAME=VALUE``, the value as JSON when it is JSON, else the text."""
    name, sep, text = raw.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {raw!r}")
    if name.strip() in RESERVED_CLAIMS:
        raise argparse.ArgumentTypeError(f"{name.strip()} is set by its own option")
    try:
        value: Any = json.loads(text)
    except ValueError:
        value = text
    return name.strip(), value


def add_sign_in_options(serve: argparse.ArgumentParser) -> None:
    """``--jwt-issuer``, ``--jwt-audience``, ``--jwks-url``, ``--jwt-context-claims``,
    ``--dev-auth`` and ``--dev-key`` on ``fanout serve``."""
    serve.add_argument(
        "--jwt-issuer",
        metavar="URL",
        help="sign clients in with JWTs from this issuer, checked by fanout_core.handlers."
        "authorizer as on AWS (sets FANOUT_JWT_ISSUER; needs --jwt-audience)",
    )
    serve.add_argument(
        "--jwt-audience", metavar="AUD", help="the tokens' audience (sets FANOUT_JWT_AUDIENCE)"
    )
    serve.add_argument(
        "--jwks-url",
        metavar="URL",
        help="the issuer's key set (sets FANOUT_JWKS_URL; default: {issuer}/.well-known/jwks.json)",
    )
    serve.add_argument(
        "--jwt-context-claims",
        metavar="NAMES",
        help="claims every later event carries, e.g. rooms (sets FANOUT_JWT_CONTEXT_CLAIMS; "
        "with --dev-auth, default: rooms)",
    )
    serve.add_argument(
        "--dev-auth",
        action="store_true",
        help="sign clients in with a development issuer on this port (its key set and OIDC "
        "discovery at /_auth/.well-known/...); mint its tokens with `fanout token`",
    )
    serve.add_argument(
        "--dev-key",
        type=Path,
        metavar="FILE",
        help="the development issuer's key pair (default: $XDG_STATE_HOME/fanout/"
        "dev-issuer.pem, made if missing)",
    )


def sign_in_settings(args: argparse.Namespace) -> dict[str, str]:
    """The FANOUT_JWT_* variables ``fanout serve``'s options ask for, checked as the
    authorizer reads them; sets ``args.authorizer`` to the library's when they sign in."""
    if args.dev_auth and args.jwt_issuer:
        raise ValueError("--dev-auth runs its own issuer: drop --jwt-issuer")
    if (args.dev_auth or args.jwt_issuer) and args.authorizer:
        raise ValueError("--authorizer replaces the JWT check: use one or the other")
    if not args.jwt_issuer and (args.jwt_audience or args.jwks_url):
        raise ValueError("--jwt-audience and --jwks-url go with --jwt-issuer")
    settings = {}
    for option, variable in (
        ("jwt_issuer", "FANOUT_JWT_ISSUER"),
        ("jwt_audience", "FANOUT_JWT_AUDIENCE"),
        ("jwks_url", "FANOUT_JWKS_URL"),
        ("jwt_context_claims", "FANOUT_JWT_CONTEXT_CLAIMS"),
    ):
        if getattr(args, option):
            settings[variable] = getattr(args, option)
    if args.jwt_issuer:
        from fanout_core.signin import SignInConfig

        SignInConfig.from_env(settings)  # a bad value fails here, before anything runs
        args.authorizer = LIBRARY_AUTHORIZER
    return settings


def dev_issuer(args: argparse.Namespace) -> Any:
    """The development issuer ``--dev-auth`` asks for, or None."""
    if not args.dev_auth:
        return None
    from fanout_core.local.issuer import DevIssuer

    return DevIssuer.load_or_create(args.dev_key)


def banner_lines(deployment: Any, default_issuer: str) -> list[str]:
    """What ``fanout serve`` says of sign-in."""
    import os

    if deployment.dev_issuer is not None:
        url = deployment.issuer_url
        command = "fanout token --sub alice --claim rooms=lobby"
        if url != default_issuer:
            command += f" --issuer {url}"
        return [
            f"sign-in:        development issuer {url} (audience "
            f"{os.environ.get('FANOUT_JWT_AUDIENCE')})",
            f"  a token:      {command}",
        ]
    issuer = os.environ.get("FANOUT_JWT_ISSUER")
    if issuer and getattr(deployment.authorizer, "__module__", "") == "fanout_core.handlers":
        audience = os.environ.get("FANOUT_JWT_AUDIENCE")
        return [f"sign-in:        JWTs from {issuer} (audience {audience})"]
    return []


def _token(args: argparse.Namespace) -> int:
    from fanout_core.local.issuer import DevIssuer

    issuer = DevIssuer.load_or_create(args.key)
    claims = dict(args.claim or [])
    print(issuer.mint(args.issuer, args.sub, audience=args.audience, claims=claims, ttl=args.ttl))
    return 0


def add_token_command(subparsers: Any, default_issuer: str) -> None:
    """Add ``fanout token``."""
    from fanout_core.local.issuer import DEV_AUDIENCE

    token: argparse.ArgumentParser = subparsers.add_parser(
        "token",
        help="mint a token that `fanout serve --dev-auth` accepts",
        description="Print a JWT signed by the development issuer's key (the file `fanout "
        "serve --dev-auth` uses; made if missing), for ?token= or the subprotocol header. "
        "For development only: its key is a file on this machine.",
    )
    token.add_argument("--sub", required=True, help="the principal: the token's subject")
    token.add_argument(
        "--claim",
        type=claim,
        action="append",
        metavar="NAME=VALUE",
        help="another claim, repeatable: rooms=a,b is the text a,b; a JSON value "
        '(5, true, ["a","b"]) goes in as JSON',
    )
    token.add_argument(
        "--ttl", type=duration, default=3600, metavar="DURATION", help="90s, 15m, 1h, 2d"
    )
    token.add_argument("--issuer", default=default_issuer, metavar="URL", help="its iss")
    token.add_argument("--audience", default=DEV_AUDIENCE, metavar="AUD", help="its aud")
    token.add_argument(
        "--key",
        type=Path,
        metavar="FILE",
        help="the key pair (default: $XDG_STATE_HOME/fanout/dev-issuer.pem)",
    )
    token.set_defaults(run=_token)
