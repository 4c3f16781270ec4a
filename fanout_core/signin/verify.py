"""The JWT check: signature, time, issuer, audience, token use and principal, with PyJWT.

Every refusal names its reason from a fixed list: PyJWT's messages are never passed on, so no
part of a token reaches a log line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from fanout_core import keys
from fanout_core.errors import InvalidKeyError
from fanout_core.signin.keyset import KeySet, PublicKey
from fanout_core.signin.refusal import Refused
from fanout_core.signin.settings import SignInConfig

MAX_TOKEN_BYTES = 8 * 1024
MAX_KID = 256
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
# The key type (and curve) each algorithm is checked with: an RSA key never checks ES256.
_FAMILY = {
    "RS": ("RSA", None),
    "PS": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
    "EdDSA": ("OKP", None),
}


def _family(algorithm: str) -> tuple[str, str | None]:
    return _FAMILY.get(algorithm) or _FAMILY[algorithm[:2]]


def _matches(key: PublicKey, algorithm: str) -> bool:
    if key.alg is not None and key.alg != algorithm:
        return False
    kty, curve = _family(algorithm)
    return key.kty == kty and (curve is None or key.crv == curve)


def _canonical(segment: str) -> bool:
    """Whether ``segment`` is base64url exactly as encoded: a decoder ignores stray characters
    and the last character's spare bits, which would let another string pass as this token."""
    from jwt.utils import base64url_decode, base64url_encode

    if not _BASE64URL.fullmatch(segment):
        return False
    try:
        return base64url_encode(base64url_decode(segment)).decode() == segment
    except ValueError:
        return False


def claims_of(token: str, config: SignInConfig, key_set: KeySet) -> dict[str, Any]:
    """The token's claims once every check passed; Refused (401, or 403) if any fails."""
    import jwt

    if len(token) > MAX_TOKEN_BYTES:
        raise Refused(401, "the token is over 8 KB")
    if not token.isascii() or token.count(".") != 2:
        raise Refused(401, "the token is not a compact JWT")
    segments = token.split(".")
    if not segments[2]:
        raise Refused(401, "the token has no signature")  # alg none
    if not all(_canonical(segment) for segment in segments):
        raise Refused(401, "the token is not canonical base64url")
    try:
        header = jwt.get_unverified_header(token)
    except (jwt.PyJWTError, ValueError, TypeError, RecursionError):
        raise Refused(401, "the token's header cannot be read") from None
    algorithm = header.get("alg")
    if not isinstance(algorithm, str) or algorithm not in config.algorithms:
        raise Refused(401, "the token's algorithm is not accepted")  # none, HS*, ...
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > MAX_KID:
        raise Refused(401, "the token names no key id")
    key = key_set.key(kid)
    if not _matches(key, algorithm):
        raise Refused(401, "the token's algorithm does not fit its key")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=[algorithm],
            issuer=config.issuer,
            leeway=config.leeway,
            options={"require": ["exp", "iss"], "verify_aud": False},
        )
    except jwt.ExpiredSignatureError:
        raise Refused(401, "the token has expired") from None
    except jwt.ImmatureSignatureError:
        raise Refused(401, "the token is not valid yet (nbf or iat)") from None
    except jwt.InvalidIssuerError:
        raise Refused(401, "the token is from another issuer") from None
    except jwt.MissingRequiredClaimError:
        raise Refused(401, "the token has no exp or no iss") from None
    except jwt.InvalidSignatureError:
        raise Refused(401, "the token's signature does not match") from None
    except (jwt.PyJWTError, ValueError, TypeError, RecursionError):
        raise Refused(401, "the token is not valid") from None
    _check_audience(claims, config)
    if config.token_use is not None and claims.get("token_use") != config.token_use:
        raise Refused(401, f"the token is not an {config.token_use} token")
    return claims


def _check_audience(claims: Mapping[str, Any], config: SignInConfig) -> None:
    audience = claims.get("aud")
    if audience is None:
        # Cognito's access tokens carry no aud: the app client is their client_id.
        audience = claims.get("client_id")
    named = [audience] if isinstance(audience, str) else audience
    if not isinstance(named, list) or not any(
        isinstance(name, str) and name in config.audience for name in named
    ):
        raise Refused(401, "the token is for another audience")


def principal_of(claims: Mapping[str, Any], claim: str) -> str:
    """The principal a claim names, valid as the library's keys need it."""
    try:
        return keys.validate_principal(claims.get(claim))
    except InvalidKeyError:
        raise Refused(401, f"the token's {claim} is no valid principal") from None
