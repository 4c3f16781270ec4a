"""The reference JavaScript client, run by Node.js against `fanout serve` with history on.

It loses its connection (cut without a close frame, as a phone losing its network does)
while the backend publishes, reconnects with backoff, resumes from the last seq it holds,
and ends with every frame once, in seq order; replays of what it has are dropped; a
backlog past FANOUT_HISTORY_MAX is reported as a gap. A live frame that arrives while its
room's history is on its way waits for the history, so frames still come once, in order.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import Callable
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest

from fanout_core import keys
from fanout_core.fanout import Fanout
from fanout_core.local.serve import LocalDeployment
from tests.support import frames

pytestmark = pytest.mark.server

CLIENT = files("fanout_core") / "client" / "fanout-client.mjs"
DRIVER = Path(__file__).parent / "support" / "js" / "client_driver.mjs"
TIMEOUT = 20.0


@cache
def node() -> list[str]:
    """Node.js, with its WebSocket switched on where it is still behind a flag (Node 20)."""
    binary = shutil.which("node")
    assert binary is not None, "Node.js is needed (make test installs dynalite with it)"
    check = [binary, "-e", "process.exit(typeof WebSocket === 'function' ? 0 : 1)"]
    if subprocess.run(check, check=False).returncode == 0:
        return [binary]
    return [binary, "--experimental-websocket"]


class Driven:
    """The client in a Node.js process: what it printed, and commands to it."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.events: list[dict[str, Any]] = []

    async def next(self, kind: str, where: Callable[[dict[str, Any]], bool] = bool) -> Any:
        try:
            return await asyncio.wait_for(self._next(kind, where), TIMEOUT)
        except TimeoutError:
            raise AssertionError(f"no {kind} event came; the client said {self.events}") from None

    async def _next(self, kind: str, where: Callable[[dict[str, Any]], bool]) -> Any:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            event = json.loads(line)
            self.events.append(event)
            if event["kind"] == kind and where(event):
                return event
        raise AssertionError(f"the client exited: {self.events}")

    async def command(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{line}\n".encode())
        await self.process.stdin.drain()

    def delivered(self) -> list[dict[str, Any]]:
        return [frames.check(e["frame"]) for e in self.events if e["kind"] == "frame"]


async def start_client(url: str, rooms: str) -> Driven:
    process = await asyncio.create_subprocess_exec(
        *node(),
        str(DRIVER),
        str(CLIENT),
        url,
        rooms,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    driven = Driven(process)
    await driven.next("status", lambda e: e["status"] == "open")
    return driven


def seq_is(seq: int) -> Callable[[dict[str, Any]], bool]:
    return lambda event: bool(event["frame"]["seq"] == seq)


async def publish(fanout: Fanout, *values: int) -> None:
    for value in values:
        await asyncio.to_thread(fanout.publish, value, room="r")


def test_the_client_resumes_after_a_drop_and_reports_a_gap() -> None:
    settings = {"FANOUT_HISTORY_SECONDS": "600", "FANOUT_HISTORY_MAX": "4"}

    async def scenario() -> None:
        # Its own table: moto servers in one process share their data.
        async with LocalDeployment(port=0, settings=settings, table="client-e2e") as deployment:
            assert deployment.gateway is not None
            fanout = Fanout.from_env()  # the served table and Management API
            client = await start_client(deployment.ws_url, "r")
            await publish(fanout, 1, 2, 3)
            for seq in (1, 2, 3):
                await client.next("frame", seq_is(seq))

            # Cut while two more are published: it resumes from seq 3 and gets both.
            await client.command("offline")
            assert deployment.gateway.drop(deployment.gateway.opened[-1])
            await client.next("status", lambda e: e["status"] == "reconnecting")
            await publish(fanout, 4, 5)
            await client.command("online")
            await client.next("status", lambda e: e["status"] == "open")
            await client.next("frame", lambda e: e["frame"]["seq"] == 5)

            # Replays of what it holds are dropped; then a live frame arrives once.
            await client.command("history r 0")
            await publish(fanout, 6)
            await client.next("frame", lambda e: e["frame"]["seq"] == 6)
            assert [f["data"] for f in client.delivered()] == [1, 2, 3, 4, 5, 6]
            assert [f["seq"] for f in client.delivered()] == [1, 2, 3, 4, 5, 6]

            # Cut while six are published: past FANOUT_HISTORY_MAX, 7 and 8 are not served.
            await client.command("offline")
            assert deployment.gateway.drop(deployment.gateway.opened[-1])
            await client.next("status", lambda e: e["status"] == "reconnecting")
            await publish(fanout, 7, 8, 9, 10, 11, 12)
            await client.command("online")
            gap = await client.next("gap")
            assert (gap["room"], gap["end"]["seq"], gap["end"]["complete"]) == ("r", 12, False)
            assert [f["seq"] for f in client.delivered()] == [*range(1, 7), 9, 10, 11, 12]
            await publish(fanout, 13)
            await client.next("frame", lambda e: e["frame"]["seq"] == 13)
            await client.command("close r")
            done = await client.next("status", lambda e: e["status"] == "done")
            assert done["last"] == 13  # it holds everything up to 13 now: the gap is behind it
            assert await client.process.wait() == 0
            assert [e for e in client.events if e["kind"] == "error"] == []

    asyncio.run(asyncio.wait_for(scenario(), 120))


def test_live_frames_during_a_resume_come_after_the_history_once_in_order() -> None:
    settings = {"FANOUT_HISTORY_SECONDS": "600", "FANOUT_HISTORY_MAX": "50"}

    async def scenario() -> None:
        async with LocalDeployment(port=0, settings=settings, table="client-live") as deployment:
            gateway = deployment.gateway
            assert gateway is not None
            fanout = Fanout.from_env()
            # Published when the next history request comes in, before it is answered: the
            # frame reaches the client live ahead of the history it follows.
            meanwhile: list[int] = []
            answer_history = gateway.routes["history"]

            def history_with_a_live_frame(event: Any, context: Any) -> Any:
                while meanwhile:
                    fanout.publish(meanwhile.pop(0), room="r")
                return answer_history(event, context)

            gateway.routes["history"] = history_with_a_live_frame
            client = await start_client(deployment.ws_url, "r")
            await publish(fanout, 1, 2, 3)
            await client.next("frame", seq_is(3))

            await client.command("offline")
            assert gateway.drop(gateway.opened[-1])
            await client.next("status", lambda e: e["status"] == "reconnecting")
            await publish(fanout, 4, 5)
            meanwhile.append(6)  # seq 6, live before history 4, 5 (and 6 again)
            await client.command("online")
            await client.next("frame", seq_is(6))
            await publish(fanout, 7)
            await client.next("frame", seq_is(7))
            assert not meanwhile
            assert [f["seq"] for f in client.delivered()] == [1, 2, 3, 4, 5, 6, 7]
            assert [f["data"] for f in client.delivered()] == [1, 2, 3, 4, 5, 6, 7]

            # The room's numbering starts again (its counter expired) while the client is
            # away: the new epoch's frames, history and live alike, come once, in order.
            await client.command("offline")
            assert gateway.drop(gateway.opened[-1])
            await client.next("status", lambda e: e["status"] == "reconnecting")
            await asyncio.to_thread(forget_numbering, fanout, "r")
            await publish(fanout, 11, 12)
            meanwhile.append(13)
            await client.command("online")
            gap = await client.next("gap")
            assert (gap["end"]["seq"], gap["end"]["complete"]) == (3, False)
            assert not meanwhile
            assert [f["data"] for f in client.delivered()][7:] == [11, 12, 13]
            assert [f["seq"] for f in client.delivered()][7:] == [1, 2, 3]
            await publish(fanout, 14)
            await client.next("frame", seq_is(4))
            await client.command("close r")
            done = await client.next("status", lambda e: e["status"] == "done")
            assert done["last"] == 4
            assert [f["data"] for f in client.delivered()][7:] == [11, 12, 13, 14]
            assert await client.process.wait() == 0
            assert [e for e in client.events if e["kind"] == "error"] == []

    asyncio.run(asyncio.wait_for(scenario(), 120))


def forget_numbering(fanout: Fanout, room: str) -> None:
    """Delete a room's counter and kept frames, as their TTL does after a long silence."""
    models = fanout.runtime.history.models
    scope = keys.scope_of(room)
    models.counter(keys.counter_pk(scope), keys.COUNTER_SK).delete()
    for row in models.history.query(keys.history_pk(scope)):
        row.delete()
