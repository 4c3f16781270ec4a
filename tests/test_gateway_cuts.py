"""The local WebSocket API's idle cut, as API Gateway's: a connection is cut when no frame
came from it for the idle timeout, and only then; a slow handler does not make it idle.

The gateway hands a connection's frames to its handlers one at a time: a frame that arrives
while a handler runs waits unread, yet API Gateway would have seen it arrive.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from fanout_core.local.connections import LocalConnections
from fanout_core.local.gateway import LocalWebSocketApi

pytestmark = pytest.mark.server

IDLE = 1.0


def ok(event: Any, context: Any) -> dict[str, Any]:
    return {"statusCode": 200}


def ping(event: Any, context: Any) -> dict[str, Any]:
    return {"statusCode": 200, "body": "pong"}


def slow(event: Any, context: Any) -> dict[str, Any]:
    time.sleep(IDLE * 1.5)  # in the gateway's worker thread, as a slow Lambda
    return {"statusCode": 200, "body": "done"}


ROUTES = {"$connect": ok, "$disconnect": ok, "$default": ok, "ping": ping, "slow": slow}


def test_a_client_that_pings_during_a_slow_handler_is_not_cut_idle() -> None:
    async def scenario() -> None:
        gateway = LocalWebSocketApi(ROUTES, LocalConnections(), idle_timeout=IDLE)
        await gateway.start()
        try:
            async with connect(gateway.url) as ws:
                await ws.send('{"action": "slow"}')
                # A ping every quarter of the idle timeout, while the slow handler runs.
                for _ in range(8):
                    await asyncio.sleep(IDLE / 4)
                    await ws.send('{"action": "ping"}')
                answers = [await asyncio.wait_for(ws.recv(), 10) for _ in range(9)]
                assert answers == ["done"] + ["pong"] * 8
                # Silent from now on: cut once the idle timeout has passed, as API Gateway.
                silent = time.monotonic()
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), 10)
                assert time.monotonic() - silent >= IDLE * 0.9
                assert closed.value.rcvd is not None
                assert closed.value.rcvd.code == 1001
        finally:
            await gateway.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_a_slow_connect_does_not_count_as_idle_time() -> None:
    slow_connect = {**ROUTES, "$connect": lambda event, context: slow(event, context)}

    async def scenario() -> None:
        gateway = LocalWebSocketApi(slow_connect, LocalConnections(), idle_timeout=IDLE)
        await gateway.start()
        try:
            async with connect(gateway.url, open_timeout=10) as ws:
                await asyncio.sleep(IDLE / 2)  # idle for half the timeout since it opened
                await ws.send('{"action": "ping"}')
                assert await asyncio.wait_for(ws.recv(), 10) == "pong"
        finally:
            await gateway.stop()

    asyncio.run(asyncio.wait_for(scenario(), 60))
