"""The authorizer's settings: its own table of variables, read as ``fanout_core.config`` reads
the others (the other handlers never read these)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from fanout_core.config import Setting, _int, _text, is_loopback, read_settings
from fanout_core.errors import ConfigError

# Asymmetric algorithms only: with HS* next to them, a token signed with the public key as
# its HMAC secret would pass; `none` is no signature at all.
ASYMMETRIC = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
DEFAULT_ALGORITHMS = ("RS256", "ES256")
DEFAULT_QUERY_PARAM = "token"
DEFAULT_PRINCIPAL_CLAIM = "sub"
TOKEN_USES = ("id", "access")
_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
# API Gateway puts principalId beside the context in every later event: a context claim of
# that name would stand in for the principal.
RESERVED = frozenset({"principalId"})


def _https(variable: str, raw: str) -> str:
    parts = urlsplit(raw)
    local = parts.scheme == "http" and is_loopback(raw)
    if not (parts.scheme == "https" or local) or not parts.netloc:
        raise ConfigError(variable, f"expected an https URL (http on this machine), got {raw!r}")
    return raw  # as the tokens carry it: a trailing slash (Auth0's) included


def _names(variable: str, raw: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))
    for name in names:
        if not _NAME.fullmatch(name):
            raise ConfigError(variable, f"{name!r} is not a claim or parameter name")
    return names


def _context_claims(variable: str, raw: str) -> tuple[tuple[str, str], ...]:
    """``rooms,groups=cognito:groups``: (context name, claim) pairs; a bare name is both."""
    pairs: dict[str, str] = {}
    for part in raw.split(","):
        name, sep, claim = part.partition("=")
        name, claim = name.strip(), claim.strip() if sep else name.strip()
        if not name and not claim:
            continue
        if not _NAME.fullmatch(name) or not claim:
            raise ConfigError(variable, f"{part.strip()!r}: expected NAME or NAME=CLAIM")
        pairs[name] = claim
    return tuple(pairs.items())


def _algorithms(variable: str, raw: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))
    for name in names:
        if name not in ASYMMETRIC:
            refused = name.lower() == "none" or name.upper().startswith("HS")
            why = "is refused whatever is configured" if refused else "is not an algorithm"
            choose = ", ".join(sorted(ASYMMETRIC))
            raise ConfigError(variable, f"{name!r} {why}; choose from {choose}")
    return names


SETTINGS: tuple[Setting, ...] = (
    Setting("issuer", ("FANOUT_JWT_ISSUER",), _https),
    Setting("audience", ("FANOUT_JWT_AUDIENCE",), _names),
    Setting("jwks_url", ("FANOUT_JWKS_URL",), _https),
    Setting("algorithms", ("FANOUT_JWT_ALGORITHMS",), _algorithms),
    Setting("leeway", ("FANOUT_JWT_LEEWAY",), _int, 0, 300),
    Setting("token_use", ("FANOUT_JWT_TOKEN_USE",), _text),
    Setting("principal_claim", ("FANOUT_JWT_PRINCIPAL_CLAIM",), _text),
    Setting("context_claims", ("FANOUT_JWT_CONTEXT_CLAIMS",), _context_claims),
    Setting("query_param", ("FANOUT_JWT_QUERY_PARAM",), _text),
    Setting("hook", ("FANOUT_AUTHORIZER",), _text),
)
VARIABLES = tuple(variable for setting in SETTINGS for variable in setting.variables)


@dataclass(frozen=True)
class SignInConfig:
    """How the authorizer checks a token: a JWT from ``issuer`` for ``audience``, or ``hook``."""

    issuer: str | None = None
    audience: tuple[str, ...] = ()  # the token's aud, or a Cognito access token's client_id
    jwks_url: str | None = None  # None: {issuer}/.well-known/jwks.json
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    leeway: int = 0  # seconds of clock skew allowed on exp, nbf and iat
    token_use: str | None = None  # Cognito's token_use claim: id or access
    principal_claim: str = DEFAULT_PRINCIPAL_CLAIM
    # (name in the context, claim): Auth0's namespaced claims and cognito:groups get a
    # plain name the policies read.
    context_claims: tuple[tuple[str, str], ...] = ()
    query_param: str = DEFAULT_QUERY_PARAM
    hook: str | None = None  # package.module:function, instead of the JWT check

    def __post_init__(self) -> None:
        for setting in SETTINGS:
            setting.check(getattr(self, setting.field))
        if not _NAME.fullmatch(self.query_param) or self.query_param == "room":
            raise ConfigError("FANOUT_JWT_QUERY_PARAM", f"{self.query_param!r} cannot be used")
        if not _NAME.fullmatch(self.principal_claim):
            raise ConfigError("FANOUT_JWT_PRINCIPAL_CLAIM", f"{self.principal_claim!r}")
        if RESERVED & {name for name, _ in self.context_claims}:
            raise ConfigError("FANOUT_JWT_CONTEXT_CLAIMS", "principalId is the principal's")
        if self.token_use is not None and self.token_use not in TOKEN_USES:
            raise ConfigError("FANOUT_JWT_TOKEN_USE", f"id or access, not {self.token_use!r}")
        if not self.algorithms or not set(self.algorithms) <= ASYMMETRIC:
            raise ConfigError("FANOUT_JWT_ALGORITHMS", "name RS256, ES256 or another of RS/PS/ES")
        if self.hook is None:
            if self.issuer is None:
                raise ConfigError("FANOUT_JWT_ISSUER", "required (or FANOUT_AUTHORIZER)")
            if not self.audience:
                raise ConfigError("FANOUT_JWT_AUDIENCE", "required: an app client id or API")

    @property
    def key_set_url(self) -> str:
        """Where the issuer's public keys are."""
        if self.jwks_url is not None:
            return self.jwks_url
        assert self.issuer is not None
        return self.issuer.rstrip("/") + "/.well-known/jwks.json"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SignInConfig:
        """Read the settings from ``env`` (default: ``os.environ``); ConfigError if bad."""
        return cls(**read_settings(SETTINGS, env))


def fingerprint(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The raw values of every variable, to tell whether the settings changed."""
    env = os.environ if env is None else env
    return tuple(env.get(variable, "") for variable in VARIABLES)
