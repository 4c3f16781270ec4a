"""A test issuer: RSA and EC keys made here, their key set served over HTTP on 127.0.0.1, and
tokens signed with them, good or forged as an attacker would.

``JwksServer`` can be slow, fail, or change its keys (a rotation); it counts the fetches.
``api_key_hook`` and the others are ``FANOUT_AUTHORIZER`` hooks for the tests.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from fanout_core.signin import Refused

AUDIENCE = "chat-app"
METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:abcdef123/prod/$connect"


@dataclass(frozen=True)
class Key:
    """A private key, its id and the algorithm it signs with."""

    kid: str
    algorithm: str
    private: Any

    def public_jwk(self) -> dict[str, Any]:
        algorithm = jwt.algorithms.get_default_algorithms()[self.algorithm]
        data: dict[str, Any] = json.loads(algorithm.to_jwk(self.private.public_key()))
        return {**data, "kid": self.kid, "use": "sig", "alg": self.algorithm}

    def public_pem(self) -> bytes:
        return bytes(
            self.private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )


@functools.cache
def rsa_key(kid: str = "rsa-1") -> Key:
    return Key(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))


@functools.cache
def ec_key(kid: str = "ec-1") -> Key:
    return Key(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))


@dataclass
class JwksServer:
    """A key set over HTTP: ``mode`` is ``ok``, ``slow`` (answers after ``delay``), ``error``
    (500) or ``garbage`` (not JSON)."""

    keys: list[Key] = field(default_factory=lambda: [rsa_key(), ec_key()])
    mode: str = "ok"
    delay: float = 1.0
    fetches: int = 0
    fetched: threading.Event = field(default_factory=threading.Event)  # set at each fetch
    url: str = ""
    extra: list[dict[str, Any]] = field(default_factory=list)  # raw JWKs served as well

    @property
    def issuer(self) -> str:
        return self.url.removesuffix("/.well-known/jwks.json")

    def body(self) -> bytes:
        keys = [key.public_jwk() for key in self.keys] + self.extra
        return json.dumps({"keys": keys}).encode()


@contextmanager
def serving(server: JwksServer | None = None) -> Iterator[JwksServer]:
    """``server`` listening on 127.0.0.1 (a free port) on a thread of its own."""
    jwks = server or JwksServer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            jwks.fetches += 1
            jwks.fetched.set()
            if jwks.mode == "slow":
                time.sleep(jwks.delay)
            if jwks.mode == "error":
                self.send_error(500)
                return
            body = b"<html>" if jwks.mode == "garbage" else jwks.body()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(ConnectionError):  # a client that gave up (slow mode)
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    jwks.url = f"http://127.0.0.1:{httpd.server_address[1]}/.well-known/jwks.json"
    try:
        yield jwks
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def claims(issuer: str, sub: str = "alice", ttl: int = 600, **more: Any) -> dict[str, Any]:
    """A good token's claims: from ``issuer``, for AUDIENCE, valid ``ttl`` seconds."""
    now = int(time.time())
    return {"iss": issuer, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + ttl, **more}


def sign(payload: dict[str, Any], key: Key | None = None, **header: Any) -> str:
    """``payload`` signed by ``key`` (default the RSA one), with its kid unless ``header``
    says otherwise (``kid=None`` leaves it out; any value goes in as given)."""
    key = key or rsa_key()
    fields = {"alg": key.algorithm, "typ": "JWT", "kid": key.kid, **header}
    fields = {name: value for name, value in fields.items() if value is not None}
    signing_input = f"{_b64(_json(fields))}.{_b64(_json(payload))}"
    algorithm = jwt.algorithms.get_default_algorithms()[key.algorithm]
    return f"{signing_input}.{_b64(algorithm.sign(signing_input.encode(), key.private))}"


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(payload: dict[str, Any], kid: str = "rsa-1") -> str:
    """A token with ``alg: none`` and no signature."""
    header = {"alg": "none", "typ": "JWT", "kid": kid}
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}."


def hs256_with_public_key(payload: dict[str, Any], key: Key) -> str:
    """The old confusion attack: HMAC-signed with the RSA public key's PEM as the secret."""
    header = {"alg": "HS256", "typ": "JWT", "kid": key.kid}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    mac = hmac.new(key.public_pem(), signing_input.encode(), "sha256").digest()
    return f"{signing_input}.{_b64(mac)}"


def request(
    token: str | list[str] | None = None, *, header: str | None = None, **query: Any
) -> dict[str, Any]:
    """A REQUEST authorizer event for ``$connect``: ``?token=`` and/or the subprotocol header."""
    params = dict(query)
    if token is not None:
        params["token"] = token
    headers = {"Host": "abcdef123.execute-api.us-east-1.amazonaws.com"}
    if header is not None:
        headers["Sec-WebSocket-Protocol"] = header
    return {
        "type": "REQUEST",
        "methodArn": METHOD_ARN,
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": {k: v if isinstance(v, str) else v[-1] for k, v in params.items()}
        or None,
        "multiValueQueryStringParameters": {
            k: [v] if isinstance(v, str) else list(v) for k, v in params.items()
        }
        or None,
        "stageVariables": {},
        "requestContext": {
            "routeKey": "$connect",
            "eventType": "CONNECT",
            "connectionId": "TWegAdtZvHcCIBA=",
            "identity": {"sourceIp": "192.0.2.1"},
            "domainName": "abcdef123.execute-api.us-east-1.amazonaws.com",
            "stage": "prod",
            "apiId": "abcdef123",
        },
    }


# -- FANOUT_AUTHORIZER hooks -------------------------------------------------------------

API_KEYS = {"key-alice": ("alice", {"plan": "pro", "rooms": ["lobby", "ops"]})}


def api_key_hook(token: str, event: Any) -> tuple[str, dict[str, Any]] | None:
    """An opaque-token lookup: a known key signs in as its user, anything else is refused."""
    return API_KEYS.get(token)


def raising_hook(token: str, event: Any) -> Any:
    raise RuntimeError(f"the lookup failed for {token}")  # its text must never be logged


def refusing_hook(token: str, event: Any) -> Any:
    raise Refused(403, "this key is suspended")


def bad_principal_hook(token: str, event: Any) -> Any:
    return ("not#valid", {})


def bad_context_hook(token: str, event: Any) -> Any:
    return ("alice", {"principalId": "mallory"})
