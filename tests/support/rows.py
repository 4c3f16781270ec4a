"""Reads of the table that only tests make."""

from __future__ import annotations

from fanout_core import keys
from fanout_core.store import ConnectionStore


def rooms_of(store: ConnectionStore, connection_id: str) -> list[str]:
    """The rooms the connection is a live member of, read from its own partition."""
    member = store.models.membership
    rows = member.query(
        keys.connection_pk(connection_id),
        member.sk.startswith(keys.ROOM_PREFIX),
        filter_condition=member.expires_at > int(store.clock()),
        consistent_read=True,
    )
    return [row.room for row in rows]
