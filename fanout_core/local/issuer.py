"""A development issuer: ``fanout serve --dev-auth`` serves it, ``fanout token`` mints with it.

One ES256 key pair, kept in a file readable by you only (so a token outlives a restart of
the server, and ``fanout token`` in another shell signs with the same key), its key set at
``{issuer}/.well-known/jwks.json`` and its OIDC discovery document at
``{issuer}/.well-known/openid-configuration``, on the WebSocket API's own port. It is for
this machine: nothing guards its key beyond the file's mode.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:  # `fanout token` imports this module: no server code on its way
    from websockets.asyncio.server import ServerConnection
    from websockets.http11 import Request, Response

ISSUER_PATH = "/_auth"
DEV_AUDIENCE = "fanout-local"
ALGORITHM = "ES256"
JWKS_PATH = "/.well-known/jwks.json"
DISCOVERY_PATH = "/.well-known/openid-configuration"


def default_key_path() -> Path:
    """Where the key pair lives: ``$XDG_STATE_HOME/fanout/dev-issuer.pem`` (or ~/.local/state)."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state, "fanout", "dev-issuer.pem")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class DevIssuer:
    """A key pair that signs tokens, and the documents that publish its public half."""

    def __init__(self, private_key: Any) -> None:
        from cryptography.hazmat.primitives.asymmetric import ec

        if not isinstance(private_key, ec.EllipticCurvePrivateKey):
            raise ValueError("the development issuer's key is an EC P-256 key")
        self.private_key = private_key
        numbers = private_key.public_key().public_numbers()
        self.public_jwk = {
            "kty": "EC",
            "crv": "P-256",
            "x": _b64(numbers.x.to_bytes(32, "big")),
            "y": _b64(numbers.y.to_bytes(32, "big")),
        }
        # RFC 7638's thumbprint: the same key gets the same id on every run.
        canonical = json.dumps(self.public_jwk, sort_keys=True, separators=(",", ":"))
        self.kid = _b64(hashlib.sha256(canonical.encode()).digest())[:16]

    @classmethod
    def generate(cls) -> DevIssuer:
        """A new key pair."""
        from cryptography.hazmat.primitives.asymmetric import ec

        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def load_or_create(cls, path: Path | None = None) -> DevIssuer:
        """The key pair in ``path`` (default :func:`default_key_path`), made there if missing."""
        from cryptography.hazmat.primitives import serialization

        path = path or default_key_path()
        if path.exists():
            return cls(serialization.load_pem_private_key(path.read_bytes(), password=None))
        issuer = cls.generate()
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        pem = issuer.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(pem)
        return issuer

    def jwks(self) -> dict[str, Any]:
        """The key set: the public key, for signatures with ES256."""
        return {"keys": [{**self.public_jwk, "kid": self.kid, "use": "sig", "alg": ALGORITHM}]}

    def discovery(self, issuer: str) -> dict[str, Any]:
        """The OIDC discovery document of ``issuer`` (what a client library reads first)."""
        return {
            "issuer": issuer,
            "jwks_uri": issuer + JWKS_PATH,
            "id_token_signing_alg_values_supported": [ALGORITHM],
            "subject_types_supported": ["public"],
            "response_types_supported": ["id_token"],
        }

    def mint(
        self,
        issuer: str,
        subject: str,
        *,
        audience: str = DEV_AUDIENCE,
        claims: Mapping[str, Any] | None = None,
        ttl: float = 3600,
        now: float | None = None,
    ) -> str:
        """A token for ``subject`` from ``issuer``, valid ``ttl`` seconds from ``now``."""
        import jwt

        issued = int(time.time() if now is None else now)
        payload = {**(claims or {}), "iss": issuer, "sub": subject, "aud": audience}
        payload.update(iat=issued, nbf=issued, exp=issued + int(ttl))
        return jwt.encode(payload, self.private_key, ALGORITHM, headers={"kid": self.kid})


class IssuerSite:
    """Serves the issuer's two documents at ``ISSUER_PATH`` on the gateway's port; every other
    path goes to ``inner`` (the console), if any."""

    def __init__(self, issuer: DevIssuer, inner: Any = None) -> None:
        self.issuer = issuer
        self.inner = inner
        self.url = ""  # http://host:port/_auth, once the gateway listens

    def _own(self, path: str) -> bool:
        return urlsplit(path).path.startswith(ISSUER_PATH + "/")

    def handles(self, path: str) -> bool:
        return self._own(path) or (self.inner is not None and bool(self.inner.handles(path)))

    def respond(self, websocket: ServerConnection, request: Request) -> Response | None:
        from websockets.datastructures import Headers
        from websockets.http11 import Response

        if not self._own(request.path):
            response: Response | None = self.inner.respond(websocket, request)
            return response
        path = urlsplit(request.path).path.removeprefix(ISSUER_PATH)
        if path == JWKS_PATH:
            document = self.issuer.jwks()
        elif path == DISCOVERY_PATH:
            document = self.issuer.discovery(self.url)
        else:
            return websocket.respond(404, "not found\n")
        body = json.dumps(document).encode()
        headers = Headers(
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "max-age=300"),
                ("Connection", "close"),
            ]
        )
        return Response(200, "OK", headers, body)

    async def session(self, websocket: ServerConnection) -> None:
        await self.inner.session(websocket)
