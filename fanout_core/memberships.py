"""A connection's memberships: join (within the rooms cap), leave, and the ping that keeps a
connection and all its rows alive; mixed into ``ConnectionStore``."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from pynamodb.exceptions import DeleteError, PutError, UpdateError

from fanout_core import keys
from fanout_core.config import FanoutConfig
from fanout_core.errors import NotConnectedError, TooManyRoomsError, condition_failed
from fanout_core.models import ConnectionItem, MembershipItem, Models, TableItem, membership_row
from fanout_core.reads import Clock

# Rows a ping refreshes at once: at the rooms cap, about 100 / 10 round trips, not 100.
REFRESH_CONCURRENCY = 10
_refresh_pool: ThreadPoolExecutor | None = None
_refresh_lock = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """One pool per container, built on the first ping that needs it."""
    global _refresh_pool
    with _refresh_lock:
        if _refresh_pool is None:
            _refresh_pool = ThreadPoolExecutor(REFRESH_CONCURRENCY, "fanout-refresh")
        return _refresh_pool


@dataclass(frozen=True)
class Partition:
    """A connection's own rows as one consistent Query read them."""

    connection: ConnectionItem | None  # its row, if live
    rooms: frozenset[str]  # the rooms of its live memberships
    rows: tuple[TableItem, ...]  # its memberships and listing (not its row, not its bucket)

    def membership(self, room: str) -> MembershipItem | None:
        """Its live membership of ``room``, or None."""
        if room not in self.rooms:
            return None
        return next(
            row for row in self.rows if isinstance(row, MembershipItem) and row.room == room
        )


class Memberships:
    """Joins, leaves and pings of one table."""

    config: FanoutConfig
    models: Models
    clock: Clock

    def partition(self, connection_id: str) -> Partition:
        """The connection's rows, read consistently in one Query (pages past 1 MB followed)."""
        now = self.clock()
        connection, rooms, rows = None, set(), []
        for row in self.models.item.query(keys.connection_pk(connection_id), consistent_read=True):
            if isinstance(row, ConnectionItem):
                connection = row if row.expires_at > now else None
            elif row.sk != keys.RATE_SK:
                rows.append(row)
                if isinstance(row, MembershipItem) and row.expires_at > now:
                    rooms.add(row.room)
        return Partition(connection, frozenset(rooms), tuple(rows))

    def join(
        self,
        connection_id: str,
        room: str,
        *,
        partition: Partition | None = None,
        limit: int | None = None,
        position: tuple[int, int] | None = None,
    ) -> bool:
        """Add the connection to ``room`` (at the room's (seq, epoch) ``position``, history
        on): False if it is a member already (nothing is written). NotConnectedError if it
        is not live; TooManyRoomsError if it is in ``limit`` rooms. ``partition``: its rows
        as just read (else they are read here).
        """
        keys.validate_room(room)
        partition = partition or self.partition(connection_id)
        connection = self.check_join(partition, connection_id, room, limit)
        if room in partition.rooms:
            return False
        now = self.clock()
        membership = membership_row(
            self.models,
            connection_id,
            connection.endpoint,
            room,
            expires_at=int(connection.expires_at),
            joined_at=int(now * 1000),
            position=position,
        )
        model = self.models.membership
        try:  # new, or in place of one expired but not yet deleted
            membership.save(condition=model.pk.does_not_exist() | (model.expires_at <= int(now)))
        except PutError as error:
            if condition_failed(error):
                return False  # another join of the same room came first
            raise
        # A $disconnect between our read and our put deleted the connection row first and
        # may have queried the partition before our put; joins at once may pass the cap
        # together: look again, take ours back.
        after = self.partition(connection_id)
        if after.connection is None:
            membership.delete()
            raise NotConnectedError(connection_id)
        if limit is not None and len(after.rooms) > limit:
            membership.delete()
            raise TooManyRoomsError(connection_id, limit)
        return True

    @staticmethod
    def check_join(
        partition: Partition, connection_id: str, room: str, limit: int | None
    ) -> ConnectionItem:
        """The live connection row, if it may join ``room`` (a room it is in: always);
        NotConnectedError or TooManyRoomsError if not."""
        if partition.connection is None:
            raise NotConnectedError(connection_id)
        if limit is not None and room not in partition.rooms and len(partition.rooms) >= limit:
            raise TooManyRoomsError(connection_id, limit)
        return partition.connection

    def leave(self, connection_id: str, room: str) -> bool:
        """Remove the connection from ``room``; False if it was not a member."""
        row = self.models.membership(keys.connection_pk(connection_id), keys.membership_sk(room))
        try:
            row.delete(condition=self.models.membership.pk.exists())
        except DeleteError as error:
            if condition_failed(error):
                return False
            raise
        return True

    def touch(self, connection_id: str, *, partition: Partition | None = None) -> bool:
        """Extend the TTL of a live connection and all its rows; False if not live.

        Its memberships and listing first, ``REFRESH_CONCURRENCY`` at a time, each
        conditional (one left meanwhile must not come back as a bare TTL row); its own row
        last. A ping that fails part way leaves the connection's expiry where it was, so a
        membership never expires before its connection. Calls: the partition's Query (unless
        ``partition`` is given), one UpdateItem per row not already at the new expiry, one
        for the connection's row.
        """
        partition = partition or self.partition(connection_id)
        if partition.connection is None:
            return False
        now = self.clock()
        expires_at = int(now) + self.config.ttl_seconds
        self._refresh([row for row in partition.rows if row.expires_at < expires_at], expires_at)
        model = self.models.connection
        try:
            partition.connection.update(
                actions=[model.expires_at.set(expires_at)],
                condition=model.pk.exists() & (model.expires_at > int(now)),
            )
        except UpdateError as error:
            if condition_failed(error):
                return False
            raise
        return True

    def _refresh(self, rows: list[TableItem], expires_at: int) -> None:
        """Set each row's expiry, if it still exists; raise the first error once all ran."""
        item = self.models.item

        def refresh(row: TableItem) -> None:
            try:
                row.update(actions=[item.expires_at.set(expires_at)], condition=item.pk.exists())
            except UpdateError as error:
                if not condition_failed(error):
                    raise

        if len(rows) <= 1:
            for row in rows:
                refresh(row)
            return
        futures = [_pool().submit(refresh, row) for row in rows]
        errors = [error for future in futures if (error := future.exception()) is not None]
        if errors:
            raise errors[0]
