"""The key layout of the single table: every pk, sk and index key is built here and nowhere else.

Room names, connection ids and principals are validated before they reach a key. None may
contain ``#`` (the separator) or anything outside a short alphabet, so no input can forge or
collide with another item's key.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

from fanout_core.errors import (
    InvalidConnectionIdError,
    InvalidIdempotencyKeyError,
    InvalidKeyError,
    InvalidPrincipalError,
    InvalidRoomNameError,
)

# 200 fits names built from two UUIDs ("org:<uuid>:project:<uuid>:chat"), as Pusher allows.
ROOM_NAME_MAX = 200
CONNECTION_ID_MAX = 128
PRINCIPAL_MAX = 128
# Every principal's own room, ``user:<principal>``, is a valid name: the alphabet holds the
# principals' (``+`` and ``|`` included).
_ROOM_NAME = re.compile(r"[A-Za-z0-9_.:/@=,;+|-]+")
# API Gateway ids are base64 (e.g. "L0SM9cOFvHcCIhw="): its alphabet, "_" and "-", never "#".
_CONNECTION_ID = re.compile(r"[A-Za-z0-9+/=_-]+")
# What authorizers return as principalId: UUIDs, e-mail addresses, "auth0|123", ARNs.
_PRINCIPAL = re.compile(r"[A-Za-z0-9_.:/@=,;+|-]+")

CONNECTION_PREFIX = "CONN#"
ROOM_PREFIX = "ROOM#"
EVERYONE_PREFIX = "ALL#"
USER_PREFIX = "USER#"
CONNECTION_SK = "CONN"
USER_SK = "USER"  # the row that lists a connection under its principal
RATE_SK = "RATE"  # the connection's send bucket (and a principal's, in a partition of its own)
RATE_PREFIX = "RATE#"  # a principal's bucket (FANOUT_USER_RATE_LIMIT), outside the index
# History (opt-in): a counter and the frames of each scope, a room's or everyone's, and the
# idempotency keys of publishes. Each is a partition of its own, outside the index.
EVERYONE_SCOPE = "ALL"
COUNTER_PREFIX = "SEQ#"
COUNTER_SK = "SEQ"
HISTORY_PREFIX = "HIST#"
DEDUP_PREFIX = "DEDUP#"
DEDUP_SK = "DEDUP"
IDEMPOTENCY_KEY_MAX = 64
_IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9_-]+")
SEQ_DIGITS = 20  # sort keys of history items: seq zero-padded, so they sort by number
MAX_SEQ = 2**53 - 1  # the largest seq a JavaScript client reads exactly

# Every connection row is also listed under one of EVERYONE_SHARDS index partitions.
# One partition for all connections would be a hot key: every $connect and $disconnect
# writes it, and a GSI partition takes ~1,000 writes/s before it throttles, which
# back-pressures writes to the table itself. A fan-out to everyone reads all shards.
# Changing this number changes where existing rows are listed: it is part of the layout.
EVERYONE_SHARDS = 16


@dataclass(frozen=True)
class _KeyRule:
    """What a value must be to go into a key, and the error that says why not."""

    error: type[InvalidKeyError]
    max_length: int
    pattern: re.Pattern[str]
    alphabet: str

    def check(self, value: object) -> str:
        if not isinstance(value, str):
            raise self.error(repr(value), "must be a string")
        if not value:
            raise self.error(value, "must not be empty")
        if len(value) > self.max_length:
            raise self.error(value, f"longer than {self.max_length} characters")
        if not self.pattern.fullmatch(value):
            raise self.error(value, f"allowed characters are {self.alphabet}")
        return value


_ROOM_RULE = _KeyRule(
    InvalidRoomNameError, ROOM_NAME_MAX, _ROOM_NAME, "A-Z a-z 0-9 _ . : - / @ = , ; + |"
)
_CONNECTION_ID_RULE = _KeyRule(
    InvalidConnectionIdError, CONNECTION_ID_MAX, _CONNECTION_ID, "A-Z a-z 0-9 + / = _ -"
)
_IDEMPOTENCY_RULE = _KeyRule(
    InvalidIdempotencyKeyError, IDEMPOTENCY_KEY_MAX, _IDEMPOTENCY_KEY, "A-Z a-z 0-9 _ -"
)
_PRINCIPAL_RULE = _KeyRule(
    InvalidPrincipalError, PRINCIPAL_MAX, _PRINCIPAL, "A-Z a-z 0-9 _ . : / @ = , ; + | -"
)


def validate_room(room: object) -> str:
    """Return ``room`` if it is a valid room name, else raise InvalidRoomNameError."""
    return _ROOM_RULE.check(room)


def validate_connection_id(connection_id: object) -> str:
    """Return ``connection_id`` if valid, else raise InvalidConnectionIdError."""
    return _CONNECTION_ID_RULE.check(connection_id)


def validate_principal(principal: object) -> str:
    """Return ``principal`` if it is a valid principal, else raise InvalidPrincipalError."""
    return _PRINCIPAL_RULE.check(principal)


def connection_pk(connection_id: str) -> str:
    """The partition of a connection: its own row and all its memberships."""
    return CONNECTION_PREFIX + validate_connection_id(connection_id)


def membership_sk(room: str) -> str:
    """Sort key of a membership row inside its connection's partition."""
    return ROOM_PREFIX + validate_room(room)


def room_index_pk(room: str) -> str:
    """Index partition listing a room's members."""
    return ROOM_PREFIX + validate_room(room)


def user_index_pk(principal: str) -> str:
    """Index partition listing the connections of one principal."""
    return USER_PREFIX + validate_principal(principal)


def user_rate_pk(principal: str) -> str:
    """The partition of a principal's token bucket, shared by all its connections."""
    return RATE_PREFIX + user_index_pk(principal)


def everyone_shard(connection_id: str) -> int:
    """The everyone-shard a connection is listed under (stable across processes)."""
    return zlib.crc32(validate_connection_id(connection_id).encode()) % EVERYONE_SHARDS


def everyone_index_pk(shard: int) -> str:
    """Index partition of one everyone-shard."""
    if not 0 <= shard < EVERYONE_SHARDS:
        raise ValueError(f"shard must be in 0..{EVERYONE_SHARDS - 1}, got {shard}")
    return f"{EVERYONE_PREFIX}{shard:02d}"


def index_sk(connection_id: str) -> str:
    """Index sort key: the same for every row of a connection."""
    return CONNECTION_PREFIX + validate_connection_id(connection_id)


def validate_partition(partition: object) -> str:
    """Return ``partition`` if it is an audience index partition (``ROOM#<room>``,
    ``USER#<principal>`` or ``ALL#<nn>``), else raise InvalidKeyError."""
    if isinstance(partition, str):
        if partition.startswith(ROOM_PREFIX):
            return room_index_pk(partition[len(ROOM_PREFIX) :])
        if partition.startswith(USER_PREFIX):
            return user_index_pk(partition[len(USER_PREFIX) :])
        shard = partition[len(EVERYONE_PREFIX) :]
        if partition.startswith(EVERYONE_PREFIX) and shard.isdigit() and len(shard) == 2:
            return everyone_index_pk(int(shard))
    raise InvalidKeyError(repr(partition)[:60], "not an audience partition")


def validate_idempotency_key(key: object) -> str:
    """Return ``key`` if it may name a publish, else raise InvalidIdempotencyKeyError."""
    return _IDEMPOTENCY_RULE.check(key)


def scope_of(room: str | None) -> str:
    """What a room's history (or everyone's, for None) is kept under."""
    return EVERYONE_SCOPE if room is None else ROOM_PREFIX + validate_room(room)


def counter_pk(scope: str) -> str:
    """The partition of a scope's sequence counter."""
    return COUNTER_PREFIX + scope


def history_pk(scope: str) -> str:
    """The partition of a scope's retained frames."""
    return HISTORY_PREFIX + scope


def history_sk(seq: int) -> str:
    """Sort key of the frame numbered ``seq``: zero-padded, so it sorts by number."""
    if not 0 <= seq < 10**SEQ_DIGITS:
        raise ValueError(f"seq out of range: {seq}")
    return f"{seq:0{SEQ_DIGITS}d}"


def dedup_pk(scope: str, key: str) -> str:
    """The partition of one idempotency key within ``scope`` (its audience, its sender)."""
    return f"{DEDUP_PREFIX}{scope}#{validate_idempotency_key(key)}"
