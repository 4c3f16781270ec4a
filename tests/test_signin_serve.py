"""Sign-in on `fanout serve`: the development issuer, `fanout token`, an outside issuer, and
the subprotocol answered as API Gateway answers it; real WebSocket clients throughout."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from fanout_core.local.issuer import DevIssuer
from fanout_core.local.serve import LocalDeployment
from tests.support import issuer as t
from tests.support.issuer import JwksServer
from tests.test_serve import TIMEOUT, frame, row_ids, rows_of, run, send, until
from tests.test_serve_cli import free_ports, serving

pytestmark = pytest.mark.server


def offer(*names: str) -> list[Subprotocol]:
    """The subprotocols a client offers, in order."""
    return [Subprotocol(name) for name in names]


async def opened(deployment: LocalDeployment, before: int) -> str:
    """The connection id of the socket opened after the first ``before``."""

    async def more() -> bool:
        assert deployment.gateway is not None
        return len(deployment.gateway.opened) > before

    await until(more, "the socket to open")
    assert deployment.gateway is not None
    return deployment.gateway.opened[before]


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
        assert response.headers["Content-Type"] == "application/json"
        return json.load(response)


def test_dev_auth_signs_in_by_subprotocol_or_query_and_owner_rooms_holds() -> None:
    settings = {"FANOUT_POLICY": "owner_rooms"}

    async def scenario() -> None:
        async with LocalDeployment(
            port=0, dev_issuer=DevIssuer.generate(), settings=settings
        ) as deployment:
            assert deployment.gateway is not None
            # The issuer's documents, on the API's port, as an OIDC client reads them.
            issuer = deployment.issuer_url
            assert issuer == f"http://{deployment.gateway.domain_name}/_auth"
            discovery = await asyncio.to_thread(
                get_json, f"{issuer}/.well-known/openid-configuration"
            )
            assert discovery["issuer"] == issuer
            keys = await asyncio.to_thread(get_json, discovery["jwks_uri"])
            assert [key["kid"] for key in keys["keys"]] == [deployment.dev_issuer.kid]

            # The browser way: the token as the subprotocol after fanout, answered fanout.
            token = deployment.mint("alice", ["lobby", "ops"])
            before = len(deployment.gateway.opened)
            alice = await connect(
                deployment.ws_url + "?room=lobby", subprotocols=offer("fanout", token)
            )
            assert alice.subprotocol == "fanout"
            alice_id = await opened(deployment, before)
            rows = rows_of(deployment)
            assert rows[(alice_id, "CONN")].principal == "alice"
            # Its own rooms only: ops yes, payroll no.
            await send(alice, action="joinRoom", room="ops")
            await send(alice, action="joinRoom", room="payroll")
            refused = await frame(alice)
            assert (refused["error"], refused["message"]) == (
                "forbidden",
                "join is not allowed for room 'payroll': it is not one of this connection's rooms",
            )
            await send(alice, action="sendMessage", room="ops", text="hi")
            sent = await frame(alice)
            assert (sent["room"], sent["body"]) == ("ops", "hi")

            # The query string; no subprotocol offered, none answered.
            before = len(deployment.gateway.opened)
            bob = await connect(f"{deployment.ws_url}?token={deployment.mint('bob', [])}")
            assert bob.subprotocol is None
            bob_id = await opened(deployment, before)
            assert rows_of(deployment)[(bob_id, "CONN")].principal == "bob"

            # A room the token does not list, at connect: the handshake is refused (403).
            with pytest.raises(InvalidStatus) as refused_room:
                await connect(
                    deployment.ws_url + "?room=payroll",
                    subprotocols=offer("fanout", deployment.mint("carol", ["lobby"])),
                )
            assert refused_room.value.response.status_code == 403
            # A token of another key, none at all, or one that expired: 401, nothing written.
            stranger = DevIssuer.generate().mint(issuer, "mallory", claims={"rooms": "lobby"})
            expired = deployment.dev_issuer.mint(issuer, "alice", ttl=-60)
            for bad in (("fanout", stranger), ("fanout",), ("fanout", expired)):
                with pytest.raises(InvalidStatus) as unauthorized:
                    await connect(deployment.ws_url + "?room=lobby", subprotocols=offer(*bad))
                assert unauthorized.value.response.status_code == 401
            assert row_ids(deployment) == {alice_id, bob_id}
            await alice.close()
            await bob.close()

    run(scenario())


def test_the_subprotocol_is_answered_as_api_gateway_answers_it() -> None:
    """Without sign-in too: `fanout` is answered when offered, nothing otherwise."""

    async def scenario() -> None:
        async with LocalDeployment(port=0) as deployment:
            for offered, answered in (
                (offer("fanout"), "fanout"),
                (offer("chat", "fanout"), "fanout"),
                (offer("chat"), None),
                (None, None),
            ):
                ws = await connect(deployment.ws_url, subprotocols=offered)
                assert ws.subprotocol == answered
                await ws.close()

    run(scenario())


def test_an_outside_issuer_checked_by_the_library_authorizer(jwks_server: JwksServer) -> None:
    """`fanout serve --jwt-issuer`: the same authorizer as on AWS, the issuer's keys over
    HTTP; the rooms claim reaches every later event."""
    jwks_server.mode, jwks_server.keys = "ok", [t.rsa_key(), t.ec_key()]
    settings = {
        "FANOUT_JWT_ISSUER": jwks_server.issuer,
        "FANOUT_JWT_AUDIENCE": t.AUDIENCE,
        "FANOUT_JWT_CONTEXT_CLAIMS": "rooms",
        "FANOUT_POLICY": "owner_rooms",
    }

    async def scenario() -> None:
        async with LocalDeployment(
            port=0, authorizer="fanout_core.handlers:authorizer", settings=settings
        ) as deployment:
            assert deployment.gateway is not None
            token = t.sign(t.claims(jwks_server.issuer, sub="dana", rooms=["ops"]), t.ec_key())
            before = len(deployment.gateway.opened)
            ws = await connect(deployment.ws_url + "?room=ops", subprotocols=offer("fanout", token))
            cid = await opened(deployment, before)
            assert rows_of(deployment)[(cid, "CONN")].principal == "dana"
            await send(ws, action="sendMessage", room="ops", text="x")
            assert (await frame(ws))["room"] == "ops"
            with pytest.raises(InvalidStatus) as refused:
                await connect(deployment.ws_url, subprotocols=offer("fanout", token + "x"))
            assert refused.value.response.status_code == 401
            await ws.close()

    run(scenario())


def test_fanout_serve_dev_auth_and_fanout_token_end_to_end(tmp_path: Path) -> None:
    """What a newcomer types: `fanout serve --dev-auth`, then the `fanout token` line it
    prints, in another shell."""
    key = tmp_path / "dev-issuer.pem"
    port, management, dynamodb = free_ports(3)
    args = ["--dev-auth", "--dev-key", str(key), "--policy", "owner_rooms"]
    args += ["--port", str(port), "--management-port", str(management)]
    args += ["--dynamodb-port", str(dynamodb), "--no-console"]
    with serving(*args) as printed:
        issuer = f"http://127.0.0.1:{port}/_auth"
        assert f"sign-in:        development issuer {issuer} (audience fanout-local)" in printed
        line = re.search(r"^  a token: +(fanout token .*)$", printed, re.MULTILINE)
        assert line is not None, printed
        command = line.group(1).split()
        assert command[:2] == ["fanout", "token"]
        assert command[command.index("--issuer") + 1] == issuer  # not the default port
        minted = subprocess.run(
            [sys.executable, "-m", "fanout_core.cli", *command[1:], "--key", str(key)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert minted.returncode == 0, minted.stderr
        token = minted.stdout.strip()

        async def scenario() -> None:
            url = f"ws://127.0.0.1:{port}/local"
            async with connect(url + "?room=lobby", subprotocols=offer("fanout", token)) as ws:
                assert ws.subprotocol == "fanout"
                await send(ws, action="sendMessage", room="lobby", text="signed in")
                got = await frame(ws)
                assert (got["room"], got["body"]) == ("lobby", "signed in")
            with pytest.raises(InvalidStatus) as refused:
                await connect(url + "?room=payroll", subprotocols=offer("fanout", token))
            assert refused.value.response.status_code == 403

        run(scenario())
