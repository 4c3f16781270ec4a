"""Signed in through the authorizer, a connection joins its own rooms and no other under
``owner_rooms``, on the three backends: the identity every later event carries is the
authorizer's answer to a real token, and the body can claim nothing more."""

from __future__ import annotations

from typing import Any

import pytest

from fanout_core import handlers
from fanout_core.local.management_api import LocalManagementApi
from fanout_core.policy import owner_rooms
from fanout_core.signin import Unauthorized, reset
from tests.support import issuer as t
from tests.support.backends import Backend
from tests.support.clock import FakeClock
from tests.support.events import connect_event
from tests.support.harness import make_chat
from tests.support.issuer import JwksServer
from tests.support.rows import rooms_of
from tests.test_handlers import error_of


def signed_in(issuer: str, sub: str, rooms: Any) -> tuple[str, dict[str, Any]]:
    """The principal and context the authorizer answers a token for ``sub`` with."""
    token = t.sign(t.claims(issuer, sub=sub, rooms=rooms), t.ec_key())
    answer = handlers.authorizer(t.request(header=f"fanout, {token}"), None)
    return answer["principalId"], answer["context"]


def test_a_signed_in_connection_joins_its_own_rooms_and_no_other(
    backend: Backend,
    local_api: LocalManagementApi,
    clock: FakeClock,
    jwks_server: JwksServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    jwks_server.mode, jwks_server.keys = "ok", [t.rsa_key(), t.ec_key()]
    monkeypatch.setenv("FANOUT_JWT_ISSUER", jwks_server.issuer)
    monkeypatch.setenv("FANOUT_JWT_AUDIENCE", t.AUDIENCE)
    monkeypatch.setenv("FANOUT_JWT_CONTEXT_CLAIMS", "rooms")
    reset()
    chat = make_chat(backend, local_api, clock, "gsi_query", policy=owner_rooms)
    store = chat.runtime.store
    issuer = jwks_server.issuer

    principal, context = signed_in(issuer, "alice", ["lobby", "ops"])
    assert (principal, context) == ("alice", {"rooms": '["lobby","ops"]'})
    alice = chat.connect(["lobby"], principal=principal, claims=context)
    bob_principal, bob_context = signed_in(issuer, "bob", "payroll")
    bob = chat.connect(["payroll"], principal=bob_principal, claims=bob_context)

    # Its own rooms (and its user's room) yes; another's no, whatever the body says.
    for room in ("ops", "user:alice"):
        response = chat.call(alice, {"action": "joinRoom", "room": room})
        assert response["statusCode"] == 200, response
    forged = {"action": "joinRoom", "room": "payroll", "rooms": "payroll", "principal": "bob"}
    assert error_of(chat.call(alice, forged)) == (403, "forbidden")
    assert sorted(rooms_of(store, alice)) == ["lobby", "ops", "user:alice"]
    assert sorted(rooms_of(store, bob)) == ["payroll"]

    # Sends reach the room's members alone; everyone is no room of anyone's.
    assert chat.send(bob, "payroll only", room="payroll") == {"statusCode": 200}
    assert chat.send(alice, "ops only", room="ops") == {"statusCode": 200}
    assert error_of(chat.send(alice, "to all")) == (403, "forbidden")
    assert chat.texts(alice) == ["ops only"]
    assert chat.texts(bob) == ["payroll only"]

    # A connect that asks for a room outside its token is refused and writes nothing.
    cid = chat.api.connections.open()
    event = connect_event(cid, rooms=["lobby", "payroll"])
    event["requestContext"]["authorizer"] = {"principalId": principal, **context}
    assert error_of(handlers.connect(event, None)) == (403, "forbidden")
    assert store.get_connection(cid) is None
    assert rooms_of(store, cid) == []

    # A token whose rooms were rewritten after signing gives no identity at all.
    token = t.sign(t.claims(issuer, sub="alice", rooms="lobby"), t.ec_key())
    rewritten = t.sign(t.claims(issuer, sub="alice", rooms="payroll"), t.ec_key())
    head, _, signature = token.rpartition(".")
    forged_token = f"{head.split('.')[0]}.{rewritten.split('.')[1]}.{signature}"
    with pytest.raises(Unauthorized):
        handlers.authorizer(t.request(forged_token), None)
    reset()
