"""A member's position from the moment it joins, on real sockets through `fanout serve`.

A member that received nothing, was dropped while 5 messages were published, and came back
gets all 5 through history, in order, once: the join told it where the room stood (its
``joinRoom`` answer; for a ``?room=`` of its connect, a ``joinRoom`` once open, answered
with the position kept when it connected), so its resume asks from there.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import boto3
import pytest
from websockets.asyncio.client import ClientConnection

from fanout_core.fanout import Fanout
from fanout_core.local.serve import LocalDeployment
from tests.support import frames
from tests.support.backends import STRATEGIES
from tests.test_serve import frame, no_frame, open_client, run, send, until

pytestmark = pytest.mark.server

HISTORY = {"FANOUT_HISTORY_SECONDS": "600"}


async def joined(ws: ClientConnection, room: str) -> dict[str, Any]:
    """Join ``room`` and return the ``fanout.joined`` answer."""
    await send(ws, action="joinRoom", room=room)
    answer = await frame(ws)
    assert (answer["event"], answer["room"]) == ("fanout.joined", room), answer
    return answer


async def drained(deployment: LocalDeployment) -> None:
    """Wait until sqs_batched's queue holds no task: no late post can reach a new socket."""
    if deployment.queue_url is None:
        return
    assert deployment.config is not None
    sqs = boto3.client(
        "sqs", endpoint_url=deployment.config.sqs_endpoint, region_name=deployment.config.region
    )
    queue_url = deployment.queue_url

    async def empty() -> bool:
        got = await asyncio.to_thread(
            sqs.get_queue_attributes,
            QueueUrl=queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )
        counts = got["Attributes"]
        waiting = counts["ApproximateNumberOfMessages"]
        return (waiting, counts["ApproximateNumberOfMessagesNotVisible"]) == ("0", "0")

    await until(empty, "the queue to drain")


async def resume(ws: ClientConnection, room: str, position: dict[str, Any]) -> list[Any]:
    """Ask ``room``'s history since ``position``; the frames posted up to its history.end."""
    await send(ws, action="history", room=room, since=position["seq"], epoch=position["epoch"])
    got = []
    while (answer := await frame(ws))["event"] != "history.end":
        got.append(answer)
    assert (answer["complete"], answer["epoch"]) == (True, position["epoch"]), answer
    return got


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_quiet_member_resumes_from_where_it_joined(strategy: str) -> None:
    async def scenario() -> None:
        async with LocalDeployment(
            port=0, strategy=strategy, settings=HISTORY, table=f"join-{strategy}"
        ) as deployment:
            gateway = deployment.gateway
            assert gateway is not None
            fanout = Fanout.from_env()
            await asyncio.to_thread(fanout.publish, "before", room="lobby")

            # Joined three ways: joinRoom into a numbered room, ?room= on its connect, and
            # joinRoom into a room nothing was ever published to.
            by_join, by_join_id = await open_client(deployment)
            by_query, by_query_id = await open_client(deployment, "?room=lobby")
            fresh, fresh_id = await open_client(deployment)
            at_join = await joined(by_join, "lobby")
            at_connect = await joined(by_query, "lobby")
            at_fresh = await joined(fresh, "quiet")
            for answer in (at_join, at_connect, at_fresh):
                frames.check(answer, "joinedFrame")
            assert at_join["seq"] == at_connect["seq"] == 1
            assert at_join["epoch"] == at_connect["epoch"] > 0
            assert (at_fresh["seq"], at_fresh["epoch"] > 0) == (0, True)
            # A member's joinRoom again answers the position it joined at, not today's.
            await asyncio.to_thread(fanout.publish, "live", room="lobby")
            assert (await frame(by_join))["data"] == "live"
            assert (await frame(by_query))["data"] == "live"
            assert (await joined(by_query, "lobby"))["seq"] == 1

            await no_frame(fresh)  # the quiet member: nothing, then dropped
            for cid in (by_join_id, by_query_id, fresh_id):
                assert gateway.drop(cid)
            for n in range(5):
                await asyncio.to_thread(fanout.publish, n, room="lobby")
                await asyncio.to_thread(fanout.publish, n, room="quiet")
            await drained(deployment)

            for room, position in (("lobby", at_join), ("lobby", at_connect), ("quiet", at_fresh)):
                ws, _ = await open_client(deployment, f"?room={room}")
                got = await resume(ws, room, position)
                data = [f["data"] for f in got]
                expected = ["live", 0, 1, 2, 3, 4] if room == "lobby" else [0, 1, 2, 3, 4]
                assert data == expected
                seqs = [f["seq"] for f in got]
                assert seqs == list(range(position["seq"] + 1, position["seq"] + 1 + len(got)))
                await no_frame(ws)  # once: nothing more, live or replayed
                await ws.close()

    run(scenario())


def test_join_answers_nothing_new_with_history_off() -> None:
    """Without history a join has no position: it answers 200 with no body, as before."""

    async def scenario() -> None:
        async with LocalDeployment(port=0, table="join-no-history") as deployment:
            ws, _ = await open_client(deployment)
            await send(ws, action="joinRoom", room="lobby")
            await no_frame(ws)
            await send(ws, action="sendMessage", room="lobby", text="hi")
            assert json.loads(await ws.recv())["body"] == "hi"
            await ws.close()

    run(scenario())
