"""End to end: real WebSocket clients chat through `fanout serve`, on every strategy."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import boto3
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from fanout_core.config import FanoutConfig
from fanout_core.local.serve import LocalDeployment
from fanout_core.store import ConnectionStore
from tests.support import authorizers, frames
from tests.support.backends import STRATEGIES

# Every test here runs `fanout serve`: a WebSocket API, a Management API and a moto server.
pytestmark = pytest.mark.server

T = TypeVar("T")
TIMEOUT = 15.0


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 120))


async def until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    async with asyncio.timeout(TIMEOUT):
        while not await condition():
            await asyncio.sleep(0.02)


async def frame(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(TIMEOUT):
        data: dict[str, Any] = frames.decode(await ws.recv())
        return data


async def no_frame(ws: ClientConnection, wait: float = 0.3) -> None:
    """Nothing arrives within ``wait`` (after the sender's own frame proved delivery ran)."""
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(wait):
            await ws.recv()


async def frames_of(ws: ClientConnection, count: int, *, repeats: bool) -> list[dict[str, Any]]:
    """The next ``count`` frames; with ``repeats``, ``count`` distinct ids, repeats dropped."""
    if not repeats:
        return [await frame(ws) for _ in range(count)]
    unique: dict[str, dict[str, Any]] = {}
    while len(unique) < count:
        got = await frame(ws)
        unique.setdefault(got["id"], got)
    return list(unique.values())


async def nothing_new(
    ws: ClientConnection, seen: list[dict[str, Any]], wait: float, *, repeats: bool
) -> None:
    """No frame arrives within ``wait``; with ``repeats``, none but repeats of ``seen``."""
    if not repeats:
        await no_frame(ws, wait)
        return
    ids = {f["id"] for f in seen}
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(wait):
            while True:
                got = frames.decode(await ws.recv())
                assert got["id"] in ids, f"a frame no publish sent: {got}"


def in_order_of(got: list[dict[str, Any]], data: list[Any]) -> list[dict[str, Any]]:
    """``got`` sorted by where its data is in ``data``; unknown data last."""
    rank = {json.dumps(value): n for n, value in enumerate(data)}
    return sorted(got, key=lambda f: rank.get(json.dumps(f.get("data")), len(data)))


def row_ids(deployment: LocalDeployment) -> set[str]:
    assert deployment.config is not None
    return {row.connection_id for row in ConnectionStore(deployment.config).rows()}


def member(
    deployment: LocalDeployment, cid: str, room: str, wanted: bool
) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        assert deployment.config is not None
        store = ConnectionStore(deployment.config)
        return await asyncio.to_thread(store.is_member, cid, room) is wanted

    return check


async def open_client(deployment: LocalDeployment, query: str = "") -> tuple[ClientConnection, str]:
    assert deployment.gateway is not None
    before = len(deployment.gateway.opened)
    ws = await connect(deployment.ws_url + query)

    async def opened() -> bool:
        assert deployment.gateway is not None
        return len(deployment.gateway.opened) > before

    await until(opened, "the socket to open")
    return ws, deployment.gateway.opened[before]


async def send(ws: ClientConnection, **body: Any) -> None:
    await ws.send(json.dumps(body))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_chat_on_every_strategy(strategy: str) -> None:
    async def scenario() -> None:
        # b's 410 comes seconds after it connected: it deletes only with no connecting grace.
        settings = {"FANOUT_CONNECTING_SECONDS": "0"}
        async with LocalDeployment(
            port=0, strategy=strategy, table="chat-e2e", settings=settings
        ) as deployment:
            a, a_id = await open_client(deployment, "?room=r")
            b, b_id = await open_client(deployment)
            c, c_id = await open_client(deployment, "?room=other")

            await send(b, action="joinRoom", room="r")
            # Frames of different connections run concurrently, as separate Lambda calls.
            await until(member(deployment, b_id, "r", True), "b to join")
            await send(a, action="sendMessage", text="to r", room="r")
            got_a, got_b = await frame(a), await frame(b)
            assert (got_a["body"], got_a["from"], got_a["room"]) == ("to r", a_id, "r")
            assert got_b == got_a
            await no_frame(c)

            await send(c, action="sendMessage", text="to all")
            for ws in (a, b, c):
                got = await frame(ws)
                assert (got["body"], got["from"], got["room"]) == ("to all", c_id, None)

            await send(b, action="leaveRoom", room="r")
            await until(member(deployment, b_id, "r", False), "b to leave")
            await send(a, action="sendMessage", text="r again", room="r")
            assert (await frame(a))["body"] == "r again"
            await no_frame(b)

            # A malformed frame gets an error frame; the connection stays usable.
            await b.send("not json")
            assert (await frame(b))["error"] == "invalid_json"
            await send(b, action="dance")
            assert (await frame(b))["error"] == "unknown_action"
            await send(b, action="sendMessage", text="still here")
            for ws in (a, b, c):
                assert (await frame(ws))["body"] == "still here"

            # A clean close runs $disconnect: the rows go at once.
            await c.close()

            async def c_gone() -> bool:
                return c_id not in row_ids(deployment)

            await until(c_gone, "c's rows to go")

            # A silent drop whose $disconnect never arrives: the next post answers 410.
            assert deployment.gateway is not None
            deployment.gateway.lose_disconnect(b_id)
            b.transport.abort()

            async def b_closed() -> bool:
                return not deployment.management.connections.is_open(b_id)

            await until(b_closed, "the server to see b drop")
            assert b_id in row_ids(deployment)
            await send(a, action="sendMessage", text="anyone?")
            assert (await frame(a))["body"] == "anyone?"

            async def b_gone() -> bool:
                return row_ids(deployment) == {a_id}

            await until(b_gone, "b's rows to be deleted after the 410")
            await a.close()

    run(scenario())


def test_connect_refused_for_bad_room_writes_nothing() -> None:
    async def scenario() -> None:
        async with LocalDeployment(port=0) as deployment:
            with pytest.raises(InvalidStatus) as refused:
                await connect(deployment.ws_url + "?room=x%23CONN%23y")
            assert refused.value.response.status_code == 403
            assert row_ids(deployment) == set()

    run(scenario())


def test_management_api_delete_closes_the_socket_and_idle_timeout_applies() -> None:
    async def scenario() -> None:
        async with LocalDeployment(port=0, idle_timeout=1.0) as deployment:
            ws, cid = await open_client(deployment)
            client = boto3.client(
                "apigatewaymanagementapi",
                endpoint_url=deployment.management_url,
                region_name="us-east-1",
            )
            info = await asyncio.to_thread(client.get_connection, ConnectionId=cid)
            assert info["Identity"]["SourceIp"] == "127.0.0.1"
            await asyncio.to_thread(client.delete_connection, ConnectionId=cid)
            with pytest.raises(ConnectionClosed):
                await frame(ws)

            idle, idle_id = await open_client(deployment)
            with pytest.raises(ConnectionClosed) as closed:
                await frame(idle)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1001  # Going away, as API Gateway's idle timeout

            async def gone() -> bool:
                return row_ids(deployment) == set()

            await until(gone, "$disconnect after the idle timeout")
            assert idle_id != cid

    run(scenario())


def test_fanout_serve_command_on_dynalite(dynalite_url: str) -> None:
    """The console script itself: prints its URLs when ready and serves a chat."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["FANOUT_TABLE"] = "serve-cli"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fanout_core.cli",
            "serve",
            "--port",
            "0",
            "--management-port",
            "0",
            "--dynamodb-endpoint",
            dynalite_url,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.strip() == "ready":
                break
        banner = "".join(lines)
        ws_url = re.search(r"WebSocket API:\s+(\S+)", banner)
        assert ws_url is not None, banner
        assert re.search(r"Management API:\s+http://127\.0\.0\.1:\d+/local", banner)
        assert f"DynamoDB:       {dynalite_url}" in banner

        async def chat() -> None:
            async with connect(ws_url.group(1)) as a, connect(ws_url.group(1)) as b:
                await asyncio.sleep(0.1)
                await send(a, action="sendMessage", text="over the wire")
                assert (await frame(a))["body"] == "over the wire"
                assert (await frame(b))["body"] == "over the wire"

        run(chat())
    finally:
        process.terminate()
        process.communicate(timeout=20)


def test_the_exported_environment_publishes_as_the_handlers_do() -> None:
    """The `export` line fanout serve prints gives backend code the handlers' settings."""
    settings = {
        "FANOUT_HISTORY_SECONDS": "600",
        "FANOUT_HISTORY_MAX": "50",
        "FANOUT_DEDUP_SECONDS": "120",
        "FANOUT_PRESENCE_EVENTS": "true",
    }

    async def scenario() -> None:
        async with LocalDeployment(port=0, settings=settings, table="serve-env") as deployment:
            served = deployment.config
            assert served is not None
            exported = dict(word.split("=", 1) for word in deployment.environment().split())
            for name, value in settings.items():
                assert exported.get(name) == value, name
            publisher = FanoutConfig.from_env(exported)
            assert (publisher.table, publisher.strategy) == (served.table, served.strategy)
            assert publisher.dedup_window == served.dedup_window == 120
            assert publisher.history_seconds == served.history_seconds
            assert publisher.history_max == served.history_max

    run(scenario())


def rows_of(deployment: LocalDeployment) -> dict[tuple[str, str], Any]:
    assert deployment.config is not None
    return {(r.connection_id, r.sk): r for r in ConnectionStore(deployment.config).rows()}


def test_authorizer_binds_principal_and_context_to_every_later_event() -> None:
    async def scenario() -> None:
        async with LocalDeployment(
            port=0, authorizer=authorizers.by_token, handlers="tests.support.authorizers"
        ) as deployment:
            ws, cid = await open_client(deployment, "?token=alice&room=lobby")
            request = authorizers.CALLS[-1]
            assert request["type"] == "REQUEST"
            assert request["methodArn"].endswith("/local/$connect")
            assert request["queryStringParameters"] == {"token": "alice", "room": "lobby"}
            assert request["requestContext"]["connectionId"] == cid
            rows = rows_of(deployment)
            assert rows[(cid, "CONN")].principal == "alice"
            assert rows[(cid, "USER")].gsi1pk == "USER#alice"
            await send(ws, action="whoami")
            async with asyncio.timeout(TIMEOUT):
                echoed = json.loads(await ws.recv())
            assert echoed == {
                "authorizer": {
                    "principalId": "alice",
                    "rooms": "lobby,ops",
                    "tier": 2,
                    "admin": True,
                }
            }
            await ws.close()

    run(scenario())


@pytest.mark.parametrize(("token", "status"), [("deny", 403), ("nobody", 401), ("nested", 500)])
def test_authorizer_refusal_refuses_the_handshake_and_writes_nothing(
    token: str, status: int
) -> None:
    async def scenario() -> None:
        async with LocalDeployment(
            port=0, authorizer="tests.support.authorizers:by_token"
        ) as deployment:
            with pytest.raises(InvalidStatus) as refused:
                await connect(deployment.ws_url + f"?token={token}&room=lobby")
            assert refused.value.response.status_code == status
            assert row_ids(deployment) == set()

    run(scenario())


PUBLISHER = """
import json, sys
from fanout_core import Fanout
fanout = Fanout.from_env()
for line in sys.stdin:
    audience, data = json.loads(line)
    print(json.dumps(fanout.publish(data, **audience).summary()), flush=True)
"""


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_second_process_publishes_to_served_clients(strategy: str) -> None:
    """Backend code in another process, with Fanout.from_env() on the served table and API."""

    async def scenario() -> None:
        async with LocalDeployment(
            port=0, strategy=strategy, authorizer=authorizers.by_token
        ) as deployment:
            alice = [await open_client(deployment, "?token=alice&room=orders") for _ in range(2)]
            bob, bob_id = await open_client(deployment, "?token=bob&room=orders")
            publishes = [
                ({"user": "alice"}, {"to": "alice"}),
                ({"room": "orders", "exclude": [bob_id]}, [1, 2]),
                ({"connections": [bob_id]}, "just bob"),
                ({}, None),
            ]
            stdin = "".join(json.dumps(p) + "\n" for p in publishes)
            done = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-c", PUBLISHER],
                input=stdin,
                capture_output=True,
                text=True,
                env=dict(os.environ),  # what fanout serve set: table, endpoints, queue
                timeout=120,
                check=False,
            )
            assert done.returncode == 0, done.stderr
            # sqs_batched delivers at least once, and SQS keeps no order between the messages
            # of different publishes: there, frames count once per id, in any order.
            repeats = strategy == "sqs_batched"
            received: dict[str, list[dict[str, Any]]] = {}
            for ws, cid in alice:
                got = await frames_of(ws, 3, repeats=repeats)
                if repeats:
                    got = in_order_of(got, [{"to": "alice"}, [1, 2], None])
                assert [f["data"] for f in got] == [{"to": "alice"}, [1, 2], None]
                assert {f["from"] for f in got} == {None}
                assert [f["room"] for f in got] == [None, "orders", None]
                received[cid] = got
            got = await frames_of(bob, 2, repeats=repeats)
            if repeats:
                got = in_order_of(got, ["just bob", None])
            assert [f["data"] for f in got] == ["just bob", None]
            received[bob_id] = got
            for ws, cid in [(bob, bob_id), *alice]:
                await nothing_new(ws, received[cid], 0.1, repeats=repeats)
                await ws.close()

    run(scenario())


def test_policy_rate_limit_and_presence_on_fanout_serve() -> None:
    """owner_rooms, 3 tokens a minute (a presence request and 2 sends) and presence events,
    as `fanout serve` runs them."""
    settings = {
        "FANOUT_POLICY": "owner_rooms",
        "FANOUT_RATE_LIMIT": "3/60",
        "FANOUT_PRESENCE_EVENTS": "true",
    }

    async def scenario() -> None:
        async with LocalDeployment(
            port=0, authorizer=authorizers.by_token, settings=settings
        ) as deployment:
            alice, alice_id = await open_client(deployment, "?token=alice&room=lobby")
            await send(alice, action="joinRoom", room="payroll")
            refused = await frame(alice)
            assert (refused["error"], refused["message"]) == (
                "forbidden",
                "join is not allowed for room 'payroll': it is not one of this connection's rooms",
            )
            await send(alice, action="sendMessage", text="to all")
            assert (await frame(alice))["error"] == "forbidden"
            bob, bob_id = await open_client(deployment, "?token=bob&room=lobby")
            joined = await frame(alice)
            assert (joined["event"], joined["data"]["connection_id"]) == ("presence.join", bob_id)
            await send(alice, action="presence", room="lobby")
            listed = await frame(alice)
            assert listed["event"] == "presence"
            assert {m["connection_id"] for m in listed["members"]} == {alice_id, bob_id}
            for n in range(2):
                await send(alice, action="sendMessage", text=f"m{n}", room="lobby")
                assert (await frame(alice))["body"] == f"m{n}"
                assert (await frame(bob))["body"] == f"m{n}"
            await send(alice, action="sendMessage", text="m2", room="lobby")
            limited = await frame(alice)
            assert limited["error"] == "rate_limited"
            assert 0 < limited["retry_after"] <= 20
            await no_frame(bob)
            await bob.close()
            left = await frame(alice)
            assert (left["event"], left["data"]["connection_id"]) == ("presence.leave", bob_id)
            await alice.close()

    run(scenario())
