"""What a failed ``fanout`` command says: one line that names the variable or the table, and
the fix. The traceback is for ``--debug``."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from fanout_core.config import is_loopback

EXPORT_HINT = "run the `export` line `fanout serve` printed (or pass --env-file FILE)"
_ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL")
_REJECTED = {
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "ExpiredTokenException",
    "ExpiredToken",
}
_UNREACHABLE = (
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ConnectionClosedError",
    "ReadTimeoutError",
)
_NO_CREDENTIALS = ("NoCredentialsError", "PartialCredentialsError", "ProfileNotFound")


class CommandError(Exception):
    """A failure the command explains in one line (exit code 2)."""


@dataclass(frozen=True)
class Target:
    """The table a command used, and where: an endpoint and what chose it."""

    table: str
    endpoint: str
    chosen_by: str  # a variable or an option; or why it is AWS's own endpoint

    def where(self) -> str:
        return f"table {self.table} at {self.endpoint} ({self.chosen_by})"


def aws_dynamodb_endpoint(region: str) -> str:
    """The endpoint boto uses for DynamoDB in ``region`` when none is set: AWS's own."""
    import boto3

    url: str = boto3.session.Session().client("dynamodb", region_name=region).meta.endpoint_url
    return url


def target_of(
    env: Mapping[str, str] | None = None, *, endpoint_option: str | None = None
) -> Target:
    """Where the table commands go with ``env``'s settings (``FanoutConfig.from_env``'s)."""
    from fanout_core.config import FanoutConfig

    env = os.environ if env is None else env
    config = FanoutConfig.from_env(env)
    if endpoint_option:
        return Target(config.table, endpoint_option, "--dynamodb-endpoint")
    if config.dynamodb_endpoint:
        chosen = next(name for name in _ENDPOINT_VARIABLES if env.get(name, "").strip())
        return Target(config.table, config.dynamodb_endpoint, chosen)
    return Target(
        config.table,
        aws_dynamodb_endpoint(config.region),
        f"AWS itself, {config.region}: AWS_ENDPOINT_URL_DYNAMODB is not set",
    )


def refuse_unset_table(env: Mapping[str, str] | None = None) -> None:
    """Refuse to use the table named ``fanout`` on AWS only because nothing was set.

    ``Fanout.from_env()`` keeps that default; from a shell, no FANOUT_TABLE and no endpoint
    means a forgotten ``export`` line far more often than the production table.
    """
    env = os.environ if env is None else env
    if env.get("FANOUT_TABLE", "").strip() or any(
        env.get(n, "").strip() for n in _ENDPOINT_VARIABLES
    ):
        return
    target = target_of(env)
    raise CommandError(
        f"FANOUT_TABLE is not set and neither is AWS_ENDPOINT_URL_DYNAMODB, so this would use "
        f"table {target.table} on AWS ({target.endpoint}): {EXPORT_HINT}, or set FANOUT_TABLE "
        "to use that AWS table"
    )


def causes(error: BaseException) -> Iterator[BaseException]:
    """``error``, then what caused it (PynamoDB keeps botocore's error in ``cause``)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        wrapped = getattr(current, "cause", None)
        current = (
            wrapped
            if isinstance(wrapped, BaseException)
            else current.__cause__ or current.__context__
        )


def _named_by(url: str, env: Mapping[str, str]) -> str:
    """The variable whose value is the endpoint ``url`` (same host and port), if any."""
    netloc = urlsplit(url).netloc
    for name, value in sorted(env.items()):
        named = name.startswith("AWS_ENDPOINT_URL") or name == "FANOUT_QUEUE_URL"
        if named and value and urlsplit(value.strip()).netloc == netloc:
            return name
    return "AWS itself"


def _client_error(error: BaseException, target: Target | None) -> str | None:
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return None
    code = str(response.get("Error", {}).get("Code", ""))
    message = " ".join(str(response.get("Error", {}).get("Message", "")).split())
    where = target.where() if target else "AWS"
    if code == "ResourceNotFoundException" and target is not None:
        return (
            f"no table {target.table} at {target.endpoint} ({target.chosen_by}): create it "
            "with `fanout table create`, set FANOUT_TABLE to an existing one, or "
            f"{EXPORT_HINT}"
        )
    if code in _REJECTED:
        return (
            f"the credentials were refused ({code}) for {where}: refresh them (AWS_PROFILE, "
            f"`aws sso login`), or {EXPORT_HINT}"
        )
    if code in ("AccessDeniedException", "AccessDenied"):
        return f"not allowed ({code}) for {where}: {message} (docs/publish.md: IAM)"
    if code:
        return f"{code} for {where}: {message}"
    return None


def _unreachable(error: BaseException, target: Target | None, *, serving: bool) -> str:
    url = str(getattr(error, "kwargs", {}).get("endpoint_url", "")).rstrip("/")
    if target is not None and (not url or urlsplit(url).netloc == urlsplit(target.endpoint).netloc):
        name, url = target.chosen_by, target.endpoint
    else:
        name = _named_by(url, os.environ)
    table = f" for table {target.table}" if target else ""
    if serving:
        drop = f"leave out {name}" if name.startswith("--") else f"unset {name}"
        fix = f"start it, or {drop} to use fanout serve's own"
    elif is_loopback(url):
        fix = f"is `fanout serve` running? Start it, or {EXPORT_HINT}"
    else:
        fix = f"check the network and AWS_REGION, or {EXPORT_HINT}"
    return f"cannot reach {url} ({name}){table}: {fix}"


def _port_in_use(error: OSError) -> str:
    what = getattr(error, "what", None)
    if what is None:
        return f"a port is taken: {error}"
    option = "--" + str(what).replace("_", "-")
    host, port = getattr(error, "host", "?"), getattr(error, "port", "?")
    return (
        f"port {port} on {host} is taken ({option}): is another `fanout serve` running? "
        f"Stop it, or pass {option} with another port (0: any free)"
    )


def explain(error: BaseException, target: Target | None = None, *, serving: bool = False) -> str:
    """One line for ``error``: what failed, where, and what to do."""
    from fanout_core.errors import FanoutError

    for cause in causes(error):
        if isinstance(cause, CommandError | FanoutError):
            return str(cause)
        if isinstance(cause, OSError) and cause.errno == errno.EADDRINUSE:
            return _port_in_use(cause)
        kind = type(cause).__name__
        if kind in _NO_CREDENTIALS:
            where = target.where() if target else "AWS"
            fix = "set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            return f"no AWS credentials for {where}: {fix}, or {EXPORT_HINT}"
        if kind in _UNREACHABLE:
            return _unreachable(cause, target, serving=serving)
        line = _client_error(cause, target)
        if line:
            return line
    text = " ".join(str(error).split()) or "(no message)"
    return f"{type(error).__name__}: {text} (--debug prints the traceback)"
