"""Key safety: no room name or connection id can forge or collide with another key."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fanout_core import keys
from fanout_core.errors import InvalidConnectionIdError, InvalidKeyError, InvalidRoomNameError


@pytest.mark.parametrize(
    "room", ["", "x#CONN#y", "ROOM#a", "a b", "a/b", "é", "\x00", "x" * 65, "x" * 10_000]
)
def test_bad_room_names(room: str) -> None:
    with pytest.raises(InvalidRoomNameError) as raised:
        keys.validate_room(room)
    assert "room name" in str(raised.value)
    assert isinstance(raised.value, ValueError)


@pytest.mark.parametrize("room", [None, 3, ["a"], b"abc"])
def test_non_string_room(room: object) -> None:
    with pytest.raises(InvalidRoomNameError, match="string"):
        keys.validate_room(room)


def test_error_message_is_bounded() -> None:
    with pytest.raises(InvalidRoomNameError) as raised:
        keys.validate_room("x" * 10_000)
    assert len(str(raised.value)) < 200


@pytest.mark.parametrize("cid", ["L0SM9cOFvHcCIhw=", "a+b/c=", "local-1_x"])
def test_good_connection_ids(cid: str) -> None:
    assert keys.validate_connection_id(cid) == cid


@pytest.mark.parametrize("cid", ["", "a#b", "x" * 129, "a b", "\n", None])
def test_bad_connection_ids(cid: object) -> None:
    with pytest.raises(InvalidConnectionIdError):
        keys.validate_connection_id(cid)


@given(st.text(max_size=80), st.text(max_size=80))
def test_distinct_valid_inputs_give_distinct_keys(a: str, b: str) -> None:
    """Any two accepted room names map to distinct keys, never to a connection's key."""
    try:
        ka, kb = keys.membership_sk(a), keys.membership_sk(b)
    except InvalidKeyError:
        return
    assert (ka == kb) == (a == b)
    assert "#" not in a
    assert ka != keys.CONNECTION_SK
    assert not ka.startswith(keys.CONNECTION_PREFIX)
    assert not keys.room_index_pk(a).startswith(keys.EVERYONE_PREFIX)


@given(st.text(max_size=200))
def test_accepted_ids_have_no_separator(cid: str) -> None:
    try:
        pk = keys.connection_pk(cid)
    except InvalidConnectionIdError:
        return
    assert pk.count("#") == 1
    assert 1 <= len(cid) <= keys.CONNECTION_ID_MAX
