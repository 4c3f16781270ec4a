"""A 410 from a connection whose ``$connect`` may still be answering deletes nothing.

``$connect`` writes the connection's rows, then answers; API Gateway answers 410 to posts
until it has the answer. A fan-out that reads the rows in between meets a 410 from a
connection about to open: deleting its rows would leave the client connected but unknown.
So a 410 deletes only the rows of a connection at least ``FANOUT_CONNECTING_SECONDS`` old.
On every strategy (the SQS worker's 410s too) and backend, through the handlers.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fanout_core import keys
from fanout_core.store import ConnectionStore
from tests.support.backends import STRATEGIES
from tests.support.clock import FakeClock
from tests.support.harness import Chat

OK = {"statusCode": 200}
GRACE = 30  # FANOUT_CONNECTING_SECONDS' default


@pytest.fixture(params=STRATEGIES)
def chat(request: pytest.FixtureRequest, chat_with: Callable[..., Chat]) -> Chat:
    return chat_with(request.param, presence_events=True)


def joined(chat: Chat) -> str:
    """A new member of ``r``, its presence.join delivered (sqs_batched: through the queue)."""
    cid = chat.connect(rooms=["r"])
    if chat.pump is not None:
        chat.pump.drain()
    return cid


def events(chat: Chat, cid: str) -> list[tuple[str, str]]:
    """The presence events ``cid`` received, with their subjects."""
    return [
        (f["event"], f["data"]["connection_id"])
        for f in chat.frames(cid)
        if str(f.get("event")).startswith("presence.")
    ]


def test_a_connect_still_answering_keeps_its_rows_and_gets_the_next_frame(chat: Chat) -> None:
    assert chat.runtime.config.connecting_seconds == GRACE
    a, b = joined(chat), joined(chat)
    chat.api.connections.close(b)  # as before its $connect has answered: posts answer 410
    chat.clock.advance(GRACE - 1)

    assert chat.send(a, "during", room="r") == OK

    assert chat.api.total("POST", 410) == 1
    assert chat.row_ids() == {a, b}
    assert events(chat, a) == [("presence.join", b)]  # no presence.leave for b
    chat.api.connections.open(b)  # $connect answered: the gateway opens it
    assert chat.send(a, "after", room="r") == OK
    assert chat.texts(b) == ["after"]
    assert chat.call(b, {"action": "ping"}) == OK  # it is known: not `not_connected`


def test_a_410_once_the_connect_has_had_its_time_deletes_the_rows(chat: Chat) -> None:
    a, b = joined(chat), joined(chat)
    chat.api.connections.close(b)
    chat.clock.advance(GRACE - 1)
    assert chat.send(a, "one", room="r") == OK
    assert chat.row_ids() == {a, b}
    chat.clock.advance(2)

    assert chat.send(a, "two", room="r") == OK

    assert chat.api.total("POST", 410) == 2
    assert chat.row_ids() == {a}
    assert events(chat, a) == [("presence.join", b), ("presence.leave", b)]
    assert chat.send(a, "three", room="r") == OK
    assert chat.api.total("POST", 410) == 2  # its rows went: nobody posts to it again


@pytest.mark.parametrize("strategy", ["gsi_query", "sqs_batched"])
def test_zero_deletes_at_once(strategy: str, chat_with: Callable[..., Chat]) -> None:
    chat = chat_with(strategy, connecting_seconds=0)
    a, b = joined(chat), joined(chat)
    chat.api.connections.close(b)

    assert chat.send(a, "now", room="r") == OK

    assert chat.row_ids() == {a}


def test_rows_still_being_written_stay(store: ConnectionStore, clock: FakeClock) -> None:
    """A batch write lands a connection's rows one by one: a 410 that finds a membership
    written before its connection row keeps it; one older than the grace is an orphan."""
    young = store.clock() - GRACE
    store.connect("kk", "https://x.example/prod", rooms=["r"])
    store.models.connection.get(*_connection_keys("kk")).delete()  # as if not yet written

    assert store.remove("kk", connected_by=young).rows == 0
    assert [row.sk for row in store.rows()] == ["ROOM#r"]
    clock.advance(GRACE)

    assert store.remove("kk", connected_by=store.clock() - GRACE).rooms == ("r",)
    assert store.rows() == []


def test_a_row_without_connected_at_is_deleted(store: ConnectionStore) -> None:
    """A connection row without the attribute was not written by a $connect in progress."""
    store.connect("old", "https://x.example/prod")
    model = store.models.connection
    model.get(*_connection_keys("old")).update(actions=[model.connected_at.remove()])

    assert store.remove("old", connected_by=store.clock() - GRACE).rows == 1
    assert store.rows() == []


def _connection_keys(connection_id: str) -> tuple[str, str]:
    return keys.connection_pk(connection_id), keys.CONNECTION_SK
