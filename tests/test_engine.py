"""Every strategy, through the same handlers, reaches exactly the live audience.

Parametrised over the four strategies and the three backends, with two-item pages so
every read crosses many page boundaries; posts go over real HTTP to the local
Management API, and sqs_batched goes through a moto server queue and the sqs_worker.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support.backends import STRATEGIES
from tests.support.harness import Chat


@pytest.fixture(params=STRATEGIES)
def chat(request: pytest.FixtureRequest, chat_with: Callable[..., Chat]) -> Chat:
    return chat_with(request.param, segments=3)


def test_room_message_reaches_exactly_the_live_members(chat: Chat) -> None:
    expired = chat.connect(rooms=["r"])
    chat.clock.advance(chat.runtime.config.ttl_seconds - 10)
    a = chat.connect(rooms=["r"])
    b = chat.connect(rooms=["r", "other"])
    c = chat.connect()
    assert chat.call(c, {"action": "joinRoom", "room": "r"}) == {"statusCode": 200}
    outsider = chat.connect(rooms=["other"])
    lonely = chat.connect()
    dropped = chat.connect(rooms=["r"])
    left = chat.connect(rooms=["r"])
    assert chat.call(left, {"action": "leaveRoom", "room": "r"}) == {"statusCode": 200}
    chat.drop(dropped)
    chat.clock.advance(11)  # `expired` is past its TTL; no backend has deleted it

    assert chat.send(a, "hello room", room="r") == {"statusCode": 200}

    for member in (a, b, c):
        assert chat.texts(member) == ["hello room"]
        (frame,) = chat.frames(member)
        assert (frame["from"], frame["room"]) == (a, "r")
        assert isinstance(frame["id"], str)
        assert len(frame["id"]) == 32
    for other in (outsider, lonely, left, expired):
        assert chat.texts(other) == []
    # The dropped member answered 410: it and its memberships are gone, nobody else is.
    assert dropped not in chat.row_ids()
    assert chat.row_ids() == {expired, a, b, c, outsider, lonely, left}
    assert chat.api.total("POST", 410) == 1
    assert chat.api.total("POST", 200) == 3


def test_message_without_room_reaches_everyone_live(chat: Chat) -> None:
    expired = chat.connect()
    chat.clock.advance(chat.runtime.config.ttl_seconds - 10)
    everyone = [chat.connect(rooms=["r"] if i % 2 else None) for i in range(9)]
    dropped = everyone.pop()
    chat.drop(dropped)
    gone_clean = everyone.pop()
    chat.disconnect(gone_clean)
    chat.clock.advance(11)

    assert chat.send(everyone[0], "hi all") == {"statusCode": 200}

    for cid in everyone:
        assert chat.texts(cid) == ["hi all"]
        assert chat.frames(cid)[0]["room"] is None
    assert chat.texts(expired) == []
    assert chat.texts(gone_clean) == []
    assert chat.row_ids() == {*everyone, expired}
    assert chat.api.total("POST", 410) == 1


def test_second_message_after_cleanup_posts_no_gone(chat: Chat) -> None:
    a = chat.connect(rooms=["r"])
    b = chat.connect(rooms=["r"])
    chat.drop(b)
    chat.send(a, "one", room="r")
    chat.send(a, "two", room="r")
    assert chat.texts(a) == ["one", "two"]
    assert chat.api.total("POST", 410) == 1  # b was deleted by the first 410


def test_non_member_cannot_send_to_room(chat: Chat) -> None:
    a = chat.connect(rooms=["r"])
    stranger = chat.connect()
    response = chat.send(stranger, "let me in", room="r")
    assert response["statusCode"] == 403
    assert '"not_a_member"' in response["body"]
    assert chat.texts(a) == []
    assert chat.api.total("POST") == 0
