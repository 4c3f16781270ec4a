"""``SignIn``: the construct's ``$connect`` authorizer, as the template's ``AuthMode`` makes it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from aws_cdk import aws_lambda as lambda_

from fanout_core.signin import SignInConfig
from fanout_core.subprotocol import HEADER


@dataclass(frozen=True)
class SignIn:
    """JWTs from ``issuer`` for ``audience`` checked by ``fanout_core.handlers.authorizer``, or
    your own check (``hook``, ``package.module:function``) instead. Each field is the variable
    in its comment, set on the authorizer's function only."""

    issuer: str = ""  # FANOUT_JWT_ISSUER
    audience: str = ""  # FANOUT_JWT_AUDIENCE
    context_claims: str = ""  # FANOUT_JWT_CONTEXT_CLAIMS, e.g. "rooms"
    token_use: str = ""  # FANOUT_JWT_TOKEN_USE: "", "id" or "access"
    hook: str = ""  # FANOUT_AUTHORIZER
    # API Gateway's identity source: the subprotocol header (browsers) or ?token=.
    token_source: Literal["header", "query"] = "header"
    # `make package`'s build/lambda/authorizer (PyJWT in it); None: the construct's code,
    # which then needs the jwt extra (`make package EXTRAS=jwt`).
    code: lambda_.Code | None = None

    def __post_init__(self) -> None:
        if self.token_source not in ("header", "query"):
            raise ValueError(f"token_source: 'header' or 'query', not {self.token_source!r}")
        # What the authorizer would refuse at its first invocation fails the synth instead.
        SignInConfig.from_env(self.environment())

    def environment(self) -> dict[str, str]:
        """The authorizer's variables."""
        values = {
            "FANOUT_JWT_ISSUER": self.issuer,
            "FANOUT_JWT_AUDIENCE": self.audience,
            "FANOUT_JWT_CONTEXT_CLAIMS": self.context_claims,
            "FANOUT_JWT_TOKEN_USE": self.token_use,
            "FANOUT_AUTHORIZER": self.hook,
        }
        return {name: value for name, value in values.items() if value}

    @property
    def identity_source(self) -> list[str]:
        """Where API Gateway looks for the token (absent: 401, and no invocation)."""
        if self.token_source == "query":
            return ["route.request.querystring.token"]
        return [f"route.request.header.{HEADER}"]
