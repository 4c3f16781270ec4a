"""Item sizes and read units as DynamoDB counts them, for the library's own rows.

DynamoDB counts an item as its attribute names plus values (UTF-8 strings; numbers at 1
byte plus 1 per two significant digits) and bills 0.5 read unit per 4 KB of a page read
eventually consistently (1 strongly consistently), rounded up per request. The rows are
the models' own (``fanout_core.models``), built and never saved.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from pynamodb.attributes import Attribute

from fanout_core import keys
from fanout_core.models import (
    AUDIENCE_PROJECTED,
    AudienceIndex,
    TableItem,
    bind_models,
    connection_row,
    membership_row,
    user_row,
)

READ_UNIT_BYTES = 4096
READ_UNIT_EVENTUAL = 0.5
WRITE_UNIT_BYTES = 1024

# A connection id as API Gateway makes them and a callback URL of the usual length.
SAMPLE_CONNECTION_ID = "L0SM9cOFvHcCIhw="
SAMPLE_ENDPOINT = "https://abcd123456.execute-api.us-east-1.amazonaws.com/prod"
SAMPLE_ROOM = "room-000001"
SAMPLE_PRINCIPAL = "user-0000001"
SAMPLE_EPOCH = 1_700_000_000


def number_size(value: int) -> int:
    """Bytes DynamoDB counts for a number: 1 plus 1 per two significant digits."""
    digits = str(abs(value)).strip("0") or "0"
    return 1 + math.ceil(len(digits) / 2)


def item_size(item: Mapping[str, str | int]) -> int:
    """An item's size as DynamoDB counts it: names plus values (UTF-8 strings, numbers)."""
    total = 0
    for name, value in item.items():
        total += len(name.encode())
        total += number_size(value) if isinstance(value, int) else len(value.encode())
    return total


@cache
def _sample_models() -> Any:
    # Rows are built, never saved: the table name only has to be valid.
    return bind_models("fanout-cost-model")


def _plain(row: Any) -> dict[str, str | int]:
    """A model's attributes as DynamoDB stores them, with plain values."""
    values: dict[str, str | int] = {}
    for name, typed in row.serialize().items():
        ((kind, value),) = typed.items()
        values[name] = int(value) if kind == "N" else value
    return values


def layout_items(
    connection_id: str,
    endpoint: str,
    *,
    rooms: tuple[str, ...] = (),
    expires_at: int,
    connected_at_ms: int,
    principal: str | None = None,
) -> list[dict[str, str | int]]:
    """The rows ``ConnectionStore.connect`` writes, as plain values (tests/test_layout.py)."""
    models = _sample_models()
    rows: list[Any] = [
        connection_row(
            models,
            connection_id,
            endpoint,
            expires_at=expires_at,
            connected_at=connected_at_ms,
            principal=principal,
        )
    ]
    rows += [
        membership_row(
            models, connection_id, endpoint, room, expires_at=expires_at, joined_at=connected_at_ms
        )
        for room in rooms
    ]
    if principal is not None:
        rows.append(user_row(models, connection_id, endpoint, principal, expires_at=expires_at))
    return [_plain(row) for row in rows]


def _key_names(owner: type) -> tuple[str, ...]:
    """The hash key's attribute name, then the range key's, of a PynamoDB model or index."""
    found = [
        value
        for value in vars(owner).values()
        if isinstance(value, Attribute) and (value.is_hash_key or value.is_range_key)
    ]
    return tuple(key.attr_name for key in sorted(found, key=lambda key: not key.is_hash_key))


# The table's keys (DynamoDB projects them into every index), the index's, and the rest.
INDEX_ATTRIBUTES = (*_key_names(TableItem), *_key_names(AudienceIndex), *AUDIENCE_PROJECTED)


def index_entry(item: Mapping[str, str | int]) -> dict[str, str | int]:
    """The ``audience`` index entry of a row: both keys and the INCLUDE projection."""
    return {name: item[name] for name in INDEX_ATTRIBUTES if name in item}


@dataclass(frozen=True)
class ItemSizes:
    """Bytes per row and per index entry."""

    connection: int
    membership: int
    connection_entry: int
    membership_entry: int
    user_entry: int = 0  # a principal's listing; 0: as a membership's

    @classmethod
    def sample(
        cls,
        connection_id: str = SAMPLE_CONNECTION_ID,
        endpoint: str = SAMPLE_ENDPOINT,
        room: str = SAMPLE_ROOM,
    ) -> ItemSizes:
        """Sizes of the rows of one connection in one room."""
        conn, member, user = layout_items(
            connection_id,
            endpoint,
            rooms=(room,),
            expires_at=SAMPLE_EPOCH + 7500,
            connected_at_ms=SAMPLE_EPOCH * 1000,
            principal=SAMPLE_PRINCIPAL,
        )
        del conn["principal"]  # most rows have none: size the common case
        return cls(
            item_size(conn),
            item_size(member),
            item_size(index_entry(conn)),
            item_size(index_entry(member)),
            item_size(index_entry(user)),
        )


def page_read_units(page_bytes: int, *, consistent: bool = False) -> float:
    """Read units of one request: 0.5 per 4 KB read (1 strongly consistent), rounded up."""
    per_unit = 1.0 if consistent else READ_UNIT_EVENTUAL
    return max(1, math.ceil(page_bytes / READ_UNIT_BYTES)) * per_unit


def write_units(item_bytes: int) -> int:
    """Write units of one put or update: 1 per 1 KB of the item, rounded up."""
    return max(1, math.ceil(item_bytes / WRITE_UNIT_BYTES))


def history_items(frame_bytes: int, room: str = SAMPLE_ROOM) -> tuple[int, int, int]:
    """Bytes of a room's counter, of one of its history items with a frame of
    ``frame_bytes``, and of an idempotency key, as ``fanout_core.history`` writes them."""
    models = _sample_models()
    scope = keys.scope_of(room)
    expires = {"expires_at": SAMPLE_EPOCH + 600}
    counter = models.counter(keys.counter_pk(scope), keys.COUNTER_SK, seq=123456, **expires)
    counter.epoch = SAMPLE_EPOCH * 1000
    frame = "x" * frame_bytes
    history = models.history(
        keys.history_pk(scope), keys.history_sk(123456), seq=123456, frame=frame, **expires
    )
    dedup = models.dedup(
        keys.dedup_pk(scope, "order-0000001"), keys.DEDUP_SK, message_id="0" * 32, **expires
    )
    counter_bytes, history_bytes, dedup_bytes = (
        item_size(_plain(row)) for row in (counter, history, dedup)
    )
    return counter_bytes, history_bytes, dedup_bytes
