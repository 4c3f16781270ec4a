"""Attacks on `fanout serve` with real WebSocket clients: a body nested deep, a policy that
raises SystemExit or KeyboardInterrupt, an authorizer context that names a principal, and
principals with `|` and `+`. The server answers each and keeps serving."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar
from urllib.parse import quote

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from tests.support.abusive import FORGED_PRINCIPAL
from tests.support.served import FREE_PORTS, Served, served

pytestmark = pytest.mark.server

T = TypeVar("T")
TIMEOUT = 15.0


@pytest.fixture(scope="module")
def server() -> Iterator[Served]:
    """One `fanout serve` under a policy that raises on two rooms, behind an authorizer
    whose context forges a principal."""
    yield from served(
        "serve",
        *FREE_PORTS,
        "--no-console",
        "--handlers",
        "tests.support.abusive",
        "--policy",
        "tests.support.abusive:policy",
        "--authorizer",
        "tests.support.abusive:authorizer",
    )


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 60))


def client(server: Served, principal: str, *rooms: str) -> Any:
    query = "&".join([f"token={quote(principal, safe='')}", *(f"room={r}" for r in rooms)])
    return connect(f"{server.ws_url}?{query}")


async def answer(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(TIMEOUT):
        data: dict[str, Any] = json.loads(await ws.recv())
    return data


async def ask(ws: ClientConnection, body: dict[str, Any]) -> dict[str, Any]:
    await ws.send(json.dumps(body))
    return await answer(ws)


async def presence(ws: ClientConnection, room: str) -> dict[str, Any]:
    """The presence answer for ``room``: a frame (allowed) or an error answer."""
    return await ask(ws, {"action": "presence", "room": room})


def test_a_body_nested_deep_is_answered_400_and_the_socket_stays_open(server: Served) -> None:
    """The gateway routes any body under 128 KB to a handler, as API Gateway does; before,
    its own route selection raised RecursionError and closed the socket with 1011."""

    async def scenario() -> None:
        async with client(server, "alice") as ws:
            for depth in (1_000, 50_000):  # ~100 KB: under the 128 KB frame limit
                nested = '{"action": "ping", "x": ' + "[" * depth + "]" * depth + "}"
                assert len(nested) < 128 * 1024
                await ws.send(nested)
                reply = await answer(ws)
                assert reply["error"] == "invalid_json", reply
            reply = await ask(ws, {"action": "joinRoom"})  # the socket still works
            assert reply["error"] == "missing_room"

    run(scenario())
    assert server.running()


@pytest.mark.parametrize("room", ["exit", "interrupt"])
def test_a_policy_that_raises_system_exit_or_keyboard_interrupt_fails_closed(
    server: Served, room: str
) -> None:
    """Refused with 500 policy_failed, nothing written, and the server keeps serving."""

    async def scenario() -> None:
        with pytest.raises(InvalidStatus):
            async with client(server, "alice", room):
                pass
        async with client(server, "bob", "lobby") as ws:  # still listening
            reply = await ask(ws, {"action": "joinRoom", "room": room})
            raised = "SystemExit" if room == "exit" else "KeyboardInterrupt"
            assert (reply["error"], reply["message"]) == (
                "policy_failed",
                f"the access policy failed: {raised}",
            )
            assert (await presence(ws, "lobby"))["count"] == 1  # the socket still works

    run(scenario())
    assert server.running(), "".join(server.output)


@pytest.mark.parametrize("action", ["exit", "interrupt"])
def test_a_handler_that_raises_system_exit_or_keyboard_interrupt_fails_one_invocation(
    server: Served, action: str
) -> None:
    """As Lambda does: the invocation fails (502), the socket and the server stay up."""

    async def scenario() -> None:
        async with client(server, "carol", "lobby") as ws:
            reply = await ask(ws, {"action": action})
            # API Gateway's answer: the error's text stays in the server's log.
            assert reply["message"] == "Internal server error", reply
            assert set(reply) == {"message", "connectionId", "requestId"}, reply
            assert (await presence(ws, "lobby"))["count"] >= 1

    run(scenario())
    assert server.running(), "".join(server.output)


def test_the_authorizers_principal_wins_over_a_context_key_of_that_name(server: Served) -> None:
    async def scenario() -> None:
        async with client(server, "alice") as ws:
            await ws.send(json.dumps({"action": "joinRoom", "room": "user:alice"}))
            seen = await presence(ws, "user:alice")
            assert [m["principal"] for m in seen["members"]] == ["alice"], seen
            reply = await ask(ws, {"action": "joinRoom", "room": f"user:{FORGED_PRINCIPAL}"})
            assert reply["error"] == "forbidden", reply

    run(scenario())


@pytest.mark.parametrize("principal", ["auth0|123", "a+b@x.com"])
def test_a_principal_with_bar_or_plus_uses_its_own_user_room(
    server: Served, principal: str
) -> None:
    async def scenario() -> None:
        room = f"user:{principal}"
        async with client(server, principal, quote(room, safe="")) as ws:
            seen = await presence(ws, room)
            assert seen.get("members") == [
                {"connection_id": seen["members"][0]["connection_id"], "principal": principal}
            ], seen
            await ws.send(json.dumps({"action": "sendMessage", "room": room, "text": "me"}))
            assert (await answer(ws))["body"] == "me"

    run(scenario())
