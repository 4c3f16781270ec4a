"""Key safety: no room name, connection id or principal can forge or collide with another key."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fanout_core import keys
from fanout_core.errors import (
    InvalidConnectionIdError,
    InvalidKeyError,
    InvalidPrincipalError,
    InvalidRoomNameError,
)


@pytest.mark.parametrize(
    "room",
    ["", "x#CONN#y", "ROOM#a", "a b", "a\\b", "a%b", "é", "\x00", "a\nb", "x" * 201, "x" * 10_000],
)
def test_bad_room_names(room: str) -> None:
    with pytest.raises(InvalidRoomNameError) as raised:
        keys.validate_room(room)
    assert "room name" in str(raised.value)
    assert isinstance(raised.value, ValueError)


ORG = "org:4f1c2a7e-9b1d-4c55-8a3e-2b6f0e9d1a77:project:0e7b5c9a-3f2d-41a8-b6c4-9d8e7f6a5b4c"


@pytest.mark.parametrize(
    "room",
    [
        "lobby",
        "r.1:x_y-z",
        f"{ORG}:chat",
        "a/b",
        "user@example.com",
        "k=v,w;x",
        "user:auth0|123",
        "user:a+b@x.com",
        "x" * 200,
    ],
)
def test_good_room_names(room: str) -> None:
    """Names built from UUIDs, paths and addresses; every name valid before stays valid."""
    assert keys.validate_room(room) == room
    assert keys.room_index_pk(room) == f"ROOM#{room}"


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


@pytest.mark.parametrize(
    "principal",
    [
        "alice",
        "user-7",
        "auth0|5f7c8ec7c33c6c004bbafe82",
        "a.b+c@example.com",
        "arn:aws:iam::1:u/x",
    ],
)
def test_good_principals(principal: str) -> None:
    assert keys.validate_principal(principal) == principal
    assert keys.user_index_pk(principal) == f"USER#{principal}"


@pytest.mark.parametrize("principal", ["", "a#b", "USER#x", "a b", "é", "\x00", "x" * 129, 7, None])
def test_bad_principals(principal: object) -> None:
    with pytest.raises(InvalidPrincipalError) as raised:
        keys.validate_principal(principal)
    assert "principal" in str(raised.value)


@given(st.from_regex(r"[A-Za-z0-9_.:/@=,;+|-]{1,128}", fullmatch=True))
def test_every_principals_own_user_room_is_a_valid_room(principal: str) -> None:
    """``owner_rooms`` lets a principal into ``user:<principal>``: its name must be valid."""
    assert keys.validate_principal(principal) == principal
    assert keys.validate_room(f"user:{principal}") == f"user:{principal}"


@given(st.text(max_size=140), st.text(max_size=140))
def test_user_partitions_are_distinct_and_no_other_kind(a: str, b: str) -> None:
    """A principal's index partition is its own: never a room's, a shard's or another's."""
    try:
        ka, kb = keys.user_index_pk(a), keys.user_index_pk(b)
    except InvalidKeyError:
        return
    assert (ka == kb) == (a == b)
    assert ka.count("#") == 1
    assert not ka.startswith((keys.ROOM_PREFIX, keys.EVERYONE_PREFIX, keys.CONNECTION_PREFIX))
