"""The $connect authorizer: good tokens allowed with their principal and claims; every bad
input refused (401 or a Deny), logged with its reason and never with the token.

Tokens are signed here with RSA and EC keys made by the test run; their key set is served
over HTTP on 127.0.0.1 (``tests/support/issuer.py``). Answers are read as API Gateway reads
them, through ``fanout_core.local.authorizer.verdict``.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fanout_core import handlers
from fanout_core.local.authorizer import verdict
from fanout_core.signin import Unauthorized, keyset, reset
from fanout_core.signin.keyset import KeySet
from tests.support import issuer as t
from tests.support.issuer import JwksServer

SIGNIN_VARIABLES = ("FANOUT_JWT_ISSUER", "FANOUT_JWT_AUDIENCE", "FANOUT_JWT_CONTEXT_CLAIMS")


@pytest.fixture
def signed(jwks_server: JwksServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[JwksServer]:
    """The authorizer set up for the test issuer, as a new container."""
    monkeypatch.setenv("FANOUT_JWT_ISSUER", jwks_server.issuer)
    monkeypatch.setenv("FANOUT_JWT_AUDIENCE", t.AUDIENCE)
    monkeypatch.setenv("FANOUT_JWT_CONTEXT_CLAIMS", "rooms,groups,tier,admin")
    jwks_server.mode, jwks_server.keys = "ok", [t.rsa_key(), t.ec_key()]
    reset()
    yield jwks_server
    reset()


def status_of(event: dict[str, Any]) -> int:
    """What API Gateway answers the handshake: 200, 401 or 403."""
    return verdict(handlers.authorizer, event, None).status


def allowed(event: dict[str, Any]) -> dict[str, Any]:
    answer = handlers.authorizer(event, None)
    assert verdict(lambda e, c: answer, event, None).status == 200, answer
    return answer


@pytest.mark.parametrize("key", [t.rsa_key, t.ec_key], ids=["RS256", "ES256"])
@pytest.mark.parametrize("way", ["query", "header"])
def test_a_good_token_is_allowed_with_its_principal_and_claims(
    signed: JwksServer, key: Callable[[], t.Key], way: str
) -> None:
    payload = t.claims(signed.issuer, sub="auth0|c.d+e@x.io", rooms="lobby,ops")
    payload.update(groups=["a", "b"], tier=2, admin=True, email="not@asked.for")
    token = t.sign(payload, key())
    event = t.request(token) if way == "query" else t.request(header=f"fanout, {token}")
    answer = allowed(event)
    assert answer["principalId"] == "auth0|c.d+e@x.io"
    assert answer["context"] == {
        "rooms": "lobby,ops",
        "groups": '["a","b"]',
        "tier": 2,
        "admin": True,
    }
    [statement] = answer["policyDocument"]["Statement"]
    assert statement == {
        "Action": "execute-api:Invoke",
        "Effect": "Allow",
        "Resource": t.METHOD_ARN,
    }


def test_cognito_id_and_access_tokens(signed: JwksServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """An id token carries aud (the app client); an access token carries client_id instead."""
    id_token = t.sign(t.claims(signed.issuer, token_use="id"))
    access = t.claims(signed.issuer, token_use="access", client_id=t.AUDIENCE)
    del access["aud"]
    access_token = t.sign(access)
    other_client = t.sign({**access, "client_id": "another-app"})
    assert status_of(t.request(id_token)) == 200
    assert status_of(t.request(access_token)) == 200
    assert status_of(t.request(other_client)) == 401
    monkeypatch.setenv("FANOUT_JWT_TOKEN_USE", "access")
    assert status_of(t.request(access_token)) == 200
    assert status_of(t.request(id_token)) == 401


def test_an_issuer_with_a_trailing_slash_is_matched_exactly(
    signed: JwksServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Auth0's issuer ends with "/"; its key set is still {issuer}/.well-known/jwks.json."""
    monkeypatch.setenv("FANOUT_JWT_ISSUER", signed.issuer + "/")
    assert status_of(t.request(t.sign(t.claims(signed.issuer + "/")))) == 200
    assert status_of(t.request(t.sign(t.claims(signed.issuer)))) == 401


def _without(payload: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k != name}


def _flip_signature(token: str) -> str:
    head, _, signature = token.rpartition(".")
    return f"{head}.{('B' if signature[0] == 'A' else 'A') + signature[1:]}"


def _swap_payload(token: str, other: str) -> str:
    head, _, rest = token.partition(".")
    return f"{head}.{other.split('.')[1]}.{rest.split('.')[1]}"


# Each bad input, as a token (or event) made from the issuer's URL, and the status it gets.
Bad = Callable[[str], dict[str, Any]]
HOSTILE: dict[str, tuple[Bad, int]] = {
    "no token": (lambda iss: t.request(), 401),
    "an empty token": (lambda iss: t.request(""), 401),
    "not a JWT": (lambda iss: t.request("not-a-token"), 401),
    "three dots": (lambda iss: t.request("a.b.c.d"), 401),
    "non-ASCII": (lambda iss: t.request("é" + t.sign(t.claims(iss))), 401),
    "a header that is not JSON": (lambda iss: t.request("bm90IGpzb24.e30.c2ln"), 401),
    "Bearer before it": (lambda iss: t.request("Bearer " + t.sign(t.claims(iss))), 401),
    "a bad signature": (lambda iss: t.request(_flip_signature(t.sign(t.claims(iss)))), 401),
    "another token's payload": (
        lambda iss: t.request(
            _swap_payload(t.sign(t.claims(iss)), t.sign(t.claims(iss, sub="admin")))
        ),
        401,
    ),
    "expired": (lambda iss: t.request(t.sign(t.claims(iss, ttl=-5))), 401),
    "not yet valid (nbf)": (
        lambda iss: t.request(t.sign(t.claims(iss, nbf=t.claims(iss)["iat"] + 600))),
        401,
    ),
    "issued in the future (iat)": (
        lambda iss: t.request(t.sign(t.claims(iss, iat=t.claims(iss)["iat"] + 600))),
        401,
    ),
    "no exp": (lambda iss: t.request(t.sign(_without(t.claims(iss), "exp"))), 401),
    "no iss": (lambda iss: t.request(t.sign(_without(t.claims(iss), "iss"))), 401),
    "another issuer": (lambda iss: t.request(t.sign(t.claims("https://evil.example"))), 401),
    "another audience": (lambda iss: t.request(t.sign(t.claims(iss, aud="other-app"))), 401),
    "no audience": (lambda iss: t.request(t.sign(_without(t.claims(iss), "aud"))), 401),
    "alg none": (lambda iss: t.request(t.unsigned(t.claims(iss))), 401),
    "HS256 with the public key as secret": (
        lambda iss: t.request(t.hs256_with_public_key(t.claims(iss), t.rsa_key())),
        401,
    ),
    "an unknown kid": (lambda iss: t.request(t.sign(t.claims(iss), kid="made-up")), 401),
    "no kid": (lambda iss: t.request(t.sign(t.claims(iss), kid=None)), 401),
    "an RSA key's kid on an EC signature": (
        lambda iss: t.request(t.sign(t.claims(iss), t.ec_key(), kid="rsa-1")),
        401,
    ),
    "over 8 KB": (lambda iss: t.request(t.sign(t.claims(iss, pad="x" * 8200))), 401),
    "no principal claim": (lambda iss: t.request(t.sign(_without(t.claims(iss), "sub"))), 401),
    "a principal that is no key": (lambda iss: t.request(t.sign(t.claims(iss, sub="a#b"))), 401),
    "a principal too long": (lambda iss: t.request(t.sign(t.claims(iss, sub="a" * 129))), 401),
    "two tokens in the query string": (
        lambda iss: t.request(token=[t.sign(t.claims(iss)), t.sign(t.claims(iss))]),
        401,
    ),
    "a token in the query string and the header": (
        lambda iss: t.request(t.sign(t.claims(iss)), header=f"fanout, {t.sign(t.claims(iss))}"),
        401,
    ),
    "a third subprotocol": (
        lambda iss: t.request(header=f"fanout, {t.sign(t.claims(iss))}, chat"),
        401,
    ),
    "no methodArn": (lambda iss: {**t.request(t.sign(t.claims(iss))), "methodArn": None}, 403),
    "a methodArn of another route": (
        lambda iss: {
            **t.request(t.sign(t.claims(iss))),
            "methodArn": t.METHOD_ARN.replace("$connect", "sendMessage"),
        },
        403,
    ),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_every_bad_input_is_refused_and_logged_without_the_token(
    signed: JwksServer, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    make, expected = HOSTILE[name]
    event = make(signed.issuer)
    caplog.set_level(logging.INFO, logger="fanout_core")
    assert status_of(event) == expected
    refusals = [r for r in caplog.records if r.name == "fanout_core.signin"]
    assert [r.levelno for r in refusals] == [logging.INFO]
    assert "sign-in refused" in refusals[0].getMessage()
    _assert_no_token_logged(event, caplog)


def _assert_no_token_logged(event: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    secrets = [*(event.get("multiValueQueryStringParameters") or {}).get("token", [])]
    secrets += [
        part.strip() for part in event["headers"].get("Sec-WebSocket-Protocol", "").split(",")
    ]
    pieces = {p for s in secrets for p in s.split(".") if len(p) >= 8}
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert not [p for p in pieces if p in logged]


def test_a_refusal_raises_exactly_what_api_gateway_reads_as_401(signed: JwksServer) -> None:
    with pytest.raises(Unauthorized) as raised:
        handlers.authorizer(t.request(t.sign(t.claims(signed.issuer, ttl=-5))), None)
    assert str(raised.value) == "Unauthorized"
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__


@pytest.mark.parametrize("mode", ["down", "error", "garbage", "slow"])
def test_a_key_set_that_cannot_be_had_refuses_with_a_deny(
    mode: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    if mode == "slow":  # it answers after 1 s; the others keep the default timeout
        monkeypatch.setattr(keyset, "FETCH_TIMEOUT", 0.2)
    caplog.set_level(logging.INFO, logger="fanout_core")
    with t.serving(t.JwksServer(mode="ok" if mode == "down" else mode, delay=1.0)) as server:
        monkeypatch.setenv("FANOUT_JWT_ISSUER", server.issuer)
        monkeypatch.setenv("FANOUT_JWT_AUDIENCE", t.AUDIENCE)
        if mode == "down":  # nothing listens on port 9
            monkeypatch.setenv("FANOUT_JWKS_URL", "http://127.0.0.1:9/.well-known/jwks.json")
        reset()
        event = t.request(t.sign(t.claims(server.issuer)))
        answer = handlers.authorizer(event, None)
        if mode != "down":  # a fetch the client gave up on is counted once the server runs it
            assert server.fetched.wait(10)
        assert server.fetches == (0 if mode == "down" else 1)
    reset()
    assert answer["policyDocument"]["Statement"][0]["Effect"] == "Deny"
    assert verdict(lambda e, c: answer, event, None).status == 403
    levels = [(r.levelname, r.getMessage().split(" ")[0]) for r in caplog.records]
    assert levels == [("WARNING", "sign-in:"), ("INFO", "sign-in")]
    _assert_no_token_logged(event, caplog)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_key_set_is_kept_and_unknown_kids_refetch_once_per_cooldown() -> None:
    with t.serving(t.JwksServer(keys=[t.rsa_key()])) as server:
        clock = Clock()
        keys = KeySet(server.url, lifespan=300, cooldown=30, clock=clock)
        assert keys.key("rsa-1").kty == "RSA"
        for _ in range(5):
            assert keys.key("rsa-1").alg == "RS256"
        assert server.fetches == 1
        for n in range(50):  # made-up kids: one refetch per cooldown, not one each
            with pytest.raises(Exception, match="key id"):
                keys.key(f"made-up-{n}")
            clock.now += 0.5
        assert server.fetches == 1  # 25 s, within the first fetch's cooldown: no refetch
        clock.now += 5
        for n in range(50):  # the cooldown is over: one refetch, then none for 30 s more
            with pytest.raises(Exception, match="key id"):
                keys.key(f"made-up-again-{n}")
        assert server.fetches == 2
        # A key the issuer adds (a rotation) is found once the cooldown allows a fetch.
        server.keys.append(t.ec_key("ec-rotated"))
        clock.now += 30
        assert keys.key("ec-rotated").crv == "P-256"
        assert server.fetches == 3
        # The lifespan ends: the set is fetched again.
        clock.now += 300
        keys.key("rsa-1")
        assert server.fetches == 4


def test_stale_keys_serve_while_the_issuer_is_down_then_go() -> None:
    with t.serving(t.JwksServer(keys=[t.rsa_key()])) as server:
        clock = Clock()
        keys = KeySet(server.url, lifespan=300, cooldown=30, max_stale=600, clock=clock)
        keys.key("rsa-1")
        server.mode = "error"
        clock.now += 301
        assert keys.key("rsa-1").kty == "RSA"  # the refetch failed: the last set serves
        assert server.fetches == 2
        clock.now += 10
        keys.key("rsa-1")
        assert server.fetches == 2  # a failed fetch waits out the cooldown too
        clock.now += 600
        with pytest.raises(Exception, match="cannot be fetched") as raised:
            keys.key("rsa-1")
        assert getattr(raised.value, "status", None) == 403


def test_context_values_are_what_api_gateway_takes(
    signed: JwksServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    claims = "rooms=https://chat.example/rooms,groups=cognito:groups,org,big,none,missing"
    monkeypatch.setenv("FANOUT_JWT_CONTEXT_CLAIMS", claims)
    payload = t.claims(signed.issuer, org={"id": 7}, big=2**60, none=None)
    payload.update({"https://chat.example/rooms": ["a,b", "lobby"], "cognito:groups": ["ops"]})
    context = allowed(t.request(t.sign(payload)))["context"]
    assert context == {
        "rooms": '["a,b","lobby"]',
        "groups": '["ops"]',
        "org": '{"id":7}',
        "big": str(2**60),
        "none": "null",
    }
    assert all(isinstance(v, str | int | float | bool) for v in context.values())
    # Over API Gateway's 8 KB for the whole answer: refused, never cut short.
    # (a list's JSON text is escaped once more in the answer: it grows past 8 KB first)
    monkeypatch.setenv("FANOUT_JWT_CONTEXT_CLAIMS", "a")
    big = t.sign(t.claims(signed.issuer, a=["a"] * 1400), t.ec_key())
    assert len(big) < 8192
    assert status_of(t.request(big)) == 403


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("FANOUT_JWT_ALGORITHMS", "RS256,HS256"),
        ("FANOUT_JWT_ALGORITHMS", "none"),
        ("FANOUT_JWT_ISSUER", ""),
        ("FANOUT_JWT_ISSUER", "http://issuer.example.com"),
        ("FANOUT_JWT_AUDIENCE", ""),
        ("FANOUT_JWT_CONTEXT_CLAIMS", "rooms,principalId"),
        ("FANOUT_JWT_TOKEN_USE", "refresh"),
        ("FANOUT_JWT_LEEWAY", "3600"),
        ("FANOUT_JWT_QUERY_PARAM", "room"),
        ("FANOUT_AUTHORIZER", "no.such.module:check"),
    ],
)
def test_a_misconfigured_authorizer_denies_everyone_and_says_why(
    signed: JwksServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    variable: str,
    value: str,
) -> None:
    monkeypatch.setenv(variable, value)
    caplog.set_level(logging.INFO, logger="fanout_core")
    assert status_of(t.request(t.sign(t.claims(signed.issuer)))) == 403
    [error] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert variable in error.getMessage()


def test_leeway_allows_a_little_clock_skew(
    signed: JwksServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = t.sign(t.claims(signed.issuer, ttl=-10))
    assert status_of(t.request(token)) == 401
    monkeypatch.setenv("FANOUT_JWT_LEEWAY", "30")
    assert status_of(t.request(token)) == 200


def test_the_query_parameter_can_be_renamed(
    signed: JwksServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FANOUT_JWT_QUERY_PARAM", "access_token")
    token = t.sign(t.claims(signed.issuer))
    assert status_of(t.request(access_token=token)) == 200
    assert status_of(t.request(token)) == 401


@pytest.mark.parametrize(
    ("hook", "token", "expected"),
    [
        ("api_key_hook", "key-alice", 200),
        ("api_key_hook", "key-mallory", 401),
        ("raising_hook", "key-alice", 403),
        ("refusing_hook", "key-alice", 403),
        ("bad_principal_hook", "key-alice", 403),
        ("bad_context_hook", "key-alice", 403),
    ],
)
def test_your_own_check_replaces_the_jwt_one(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    hook: str,
    token: str,
    expected: int,
) -> None:
    monkeypatch.setenv("FANOUT_AUTHORIZER", f"tests.support.issuer:{hook}")
    reset()
    caplog.set_level(logging.INFO, logger="fanout_core")
    event = t.request(token)
    assert status_of(event) == expected
    if expected == 200:
        answer = handlers.authorizer(event, None)
        assert answer["principalId"] == "alice"
        assert answer["context"] == {"plan": "pro", "rooms": '["lobby","ops"]'}
    assert token not in caplog.text
    reset()


def test_without_pyjwt_the_authorizer_denies_and_names_the_extra(jwks_server: JwksServer) -> None:
    code = """
import json, logging, sys
from tests.support.issuer import request
sys.modules["jwt"] = None  # as if the jwt extra were not installed
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
from fanout_core import handlers
answer = handlers.authorizer(request("a.b.c"), None)
print(json.dumps(answer))
"""
    env = {**os.environ, "FANOUT_JWT_ISSUER": jwks_server.issuer, "FANOUT_JWT_AUDIENCE": "x"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["policyDocument"]["Statement"][0]["Effect"] == "Deny"
    assert "ERROR" in done.stderr
    assert "pip install 'fanout-core[jwt]'" in done.stderr


def test_the_authorizer_loads_no_store_and_no_aws_sdk() -> None:
    code = """
import json, os, sys
from tests.support.issuer import AUDIENCE, claims, request, serving, sign
with serving() as server:
    os.environ.update(FANOUT_JWT_ISSUER=server.issuer, FANOUT_JWT_AUDIENCE=AUDIENCE)
    from fanout_core import handlers
    answer = handlers.authorizer(request(sign(claims(server.issuer))), None)
heavy = [m for m in ("pynamodb", "boto3", "botocore", "fanout_core.runtime.Runtime",
         "fanout_core.store", "fanout_core.delivery") if m in sys.modules]
print(json.dumps([answer["principalId"], heavy]))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ["alice", []]


# -- one byte changed -------------------------------------------------------------------


@pytest.fixture(scope="module")
def issuer_env(jwks_server: JwksServer) -> Iterator[dict[str, str]]:
    """The authorizer's variables for the whole module's property test (no monkeypatch: a
    Hypothesis test runs many examples in one fixture scope)."""
    values = {"FANOUT_JWT_ISSUER": jwks_server.issuer, "FANOUT_JWT_AUDIENCE": t.AUDIENCE}
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    jwks_server.mode = "ok"
    reset()
    good = {
        "RS256": t.sign(t.claims(jwks_server.issuer, ttl=3600), t.rsa_key()),
        "ES256": t.sign(t.claims(jwks_server.issuer, ttl=3600), t.ec_key()),
    }
    yield good
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    reset()


@given(
    algorithm=st.sampled_from(["RS256", "ES256"]),
    part=st.sampled_from(["header", "payload", "signature"]),
    where=st.floats(0, 1, exclude_max=True),
    byte=st.integers(0, 255),
)
def test_any_one_byte_changed_is_refused(
    issuer_env: dict[str, str], algorithm: str, part: str, where: float, byte: int
) -> None:
    token = issuer_env[algorithm]
    assert status_of(t.request(token)) == 200
    sections = token.split(".")
    index = ["header", "payload", "signature"].index(part)
    section = sections[index]
    at = int(where * len(section))
    if chr(byte) == section[at]:
        byte = (byte + 1) % 256
    sections[index] = section[:at] + chr(byte) + section[at + 1 :]
    changed = ".".join(sections)
    with pytest.raises(Unauthorized):
        handlers.authorizer(t.request(changed), None)


def test_a_signature_spelled_another_way_is_refused(
    signed: JwksServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A base64 decoder ignores the last character's spare bits: ``…Q`` and ``…R`` can
    decode to the same signature. Only the spelling the issuer made signs in."""
    from jwt.utils import base64url_decode

    token = t.sign(t.claims(signed.issuer), t.ec_key())
    head, _, signature = token.rpartition(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    same = [
        c
        for c in alphabet
        if c != signature[-1]
        and base64url_decode(signature[:-1] + c) == base64url_decode(signature)
    ]
    assert same  # 64 bytes in 86 characters: 4 spare bits
    caplog.set_level(logging.INFO, logger="fanout_core")
    for c in same:
        assert status_of(t.request(f"{head}.{signature[:-1]}{c}")) == 401
    assert caplog.text.count("not canonical base64url") == len(same)
