"""ConnectionStore: connections, room memberships and their expiry, in one DynamoDB table."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from pynamodb.exceptions import DeleteError

from fanout_core import keys
from fanout_core.audience import Page, Target
from fanout_core.config import FanoutConfig, local_credentials
from fanout_core.errors import condition_failed
from fanout_core.memberships import Memberships, Partition
from fanout_core.models import (
    ConnectionItem,
    MembershipItem,
    Models,
    TableItem,
    UserItem,
    bind_models,
    connection_row,
    membership_row,
    user_row,
)
from fanout_core.reads import AudienceReads, Clock, Member

__all__ = [
    "Clock",
    "ConnectionStore",
    "Departure",
    "Member",
    "Page",
    "Partition",
    "SweepResult",
    "Target",
    "models_for",
]


@dataclass(frozen=True)
class Departure:
    """What removing a connection deleted: its rooms and principal, for presence events."""

    connection_id: str
    principal: str | None
    rooms: tuple[str, ...]
    rows: int


@dataclass(frozen=True)
class SweepResult:
    """What a sweep deleted."""

    connections: int
    memberships: int


def models_for(config: FanoutConfig) -> Models:
    """The models bound to ``config``'s table and endpoint."""
    return bind_models(
        config.table,
        host=config.dynamodb_endpoint,
        region=config.region,
        credentials=local_credentials(config.dynamodb_endpoint),
    )


def _validate_endpoint(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(endpoint) > 2048:
        raise ValueError(f"invalid callback endpoint {endpoint!r}: expected an http(s) URL")
    return endpoint


class ConnectionStore(AudienceReads, Memberships):
    """Reads and writes the fan-out table; the audience reads are ``AudienceReads``', joins,
    leaves and pings ``Memberships``'.

    Every read skips rows whose ``expires_at`` has passed: DynamoDB deletes expired
    items only within about two days, and local backends never do.
    """

    def __init__(
        self,
        config: FanoutConfig | None = None,
        *,
        clock: Clock = time.time,
        models: Models | None = None,
    ) -> None:
        self.config = config or FanoutConfig.from_env()
        self.models = models or models_for(self.config)
        self.clock = clock

    # -- writes ------------------------------------------------------------------------

    def connect(
        self,
        connection_id: str,
        endpoint: str,
        *,
        rooms: Iterable[str] = (),
        principal: str | None = None,
        positions: Mapping[str, tuple[int, int]] | None = None,
    ) -> None:
        """Store a new connection, its memberships of ``rooms`` (each with its room's
        ``positions`` entry, history on), and its principal's listing.

        Everything is validated before the first write; if a write fails, what was
        written is deleted again before the error is raised.
        """
        keys.validate_connection_id(connection_id)
        room_list = list(dict.fromkeys(keys.validate_room(room) for room in rooms))
        if principal is not None:
            keys.validate_principal(principal)
        _validate_endpoint(endpoint)
        now = self.clock()
        expires_at = int(now) + self.config.ttl_seconds
        connected_at = int(now * 1000)
        rows: list[TableItem] = [
            connection_row(
                self.models,
                connection_id,
                endpoint,
                expires_at=expires_at,
                connected_at=connected_at,
                principal=principal,
            )
        ]
        rows += [
            membership_row(
                self.models,
                connection_id,
                endpoint,
                room,
                expires_at=expires_at,
                joined_at=connected_at,
                position=(positions or {}).get(room),
            )
            for room in room_list
        ]
        if principal is not None:
            rows.append(
                user_row(self.models, connection_id, endpoint, principal, expires_at=expires_at)
            )
        try:
            with self.models.item.batch_write() as batch:
                for row in rows:
                    batch.save(row)
        except Exception:
            self._delete_rows_quietly(rows)
            raise

    def disconnect(self, connection_id: str) -> int:
        """Delete the connection and all its rows; return how many rows went.

        Idempotent. The connection row goes first, so a concurrent ``join`` either
        sees it gone or leaves a membership this call's query then finds.
        """
        return self.remove(connection_id).rows

    def remove(self, connection_id: str, *, connected_by: float | None = None) -> Departure:
        """``disconnect``, telling which rooms (and principal) the rows it deleted had.

        With ``connected_by`` (epoch seconds), the rows of a connection that connected
        after it, or whose rows are still being written, are kept: nothing is deleted
        and the departure names no row."""
        model = self.models.connection
        pk = keys.connection_pk(connection_id)
        condition = model.pk.exists()
        young = 0 if connected_by is None else int(connected_by * 1000)
        if connected_by is not None:
            # A row without the attribute was not written by this $connect: it may go.
            condition &= model.connected_at.does_not_exist() | (model.connected_at <= young)
        deleted = 0
        try:
            model(pk, keys.CONNECTION_SK).delete(condition=condition)
            deleted += 1
        except DeleteError as error:
            if not condition_failed(error):
                raise
        rows = list(self.models.item.query(pk, consistent_read=True))
        if connected_by is not None and not deleted and _connecting(rows, young):
            return Departure(connection_id, None, (), 0)
        if rows:
            with self.models.item.batch_write() as batch:
                for row in rows:
                    batch.delete(row)
        return Departure(
            connection_id,
            next((row.principal for row in rows if isinstance(row, UserItem)), None),
            tuple(row.room for row in rows if isinstance(row, MembershipItem)),
            deleted + len(rows),
        )

    def sweep(self, *, page_size: int | None = None) -> SweepResult:
        """Delete every expired row (and memberships orphaned by an expired connection)."""
        now = int(self.clock())
        item = self.models.item
        connections = memberships = 0
        for row in item.scan(item.expires_at <= now, page_size=page_size):
            try:
                # The condition keeps a row that was touched since the scan read it.
                row.delete(condition=item.expires_at <= now)
            except DeleteError as error:
                if condition_failed(error):
                    continue
                raise
            if isinstance(row, ConnectionItem):
                connections += 1
                memberships += self._delete_rest_of_partition(row.connection_id)
            elif isinstance(row, MembershipItem):
                memberships += 1
        return SweepResult(connections=connections, memberships=memberships)

    # -- reads -------------------------------------------------------------------------

    def live_connections(self, principal: str, *, up_to: int) -> int:
        """How many live connections ``principal`` has, counted up to ``up_to`` (the index
        is eventually consistent: connections opened at the same moment may be missed)."""
        count = 0
        for page in self.user_pages(principal):
            count += len(page.targets)
            if count >= up_to:
                break
        return min(count, up_to)

    def get_connection(self, connection_id: str) -> ConnectionItem | None:
        """The live connection row, or None (missing or expired)."""
        row = self._get(self.models.connection, connection_id, keys.CONNECTION_SK)
        return row if isinstance(row, ConnectionItem) else None

    def is_member(self, connection_id: str, room: str) -> bool:
        """True if the connection is a live member of ``room``."""
        return self.membership(connection_id, room) is not None

    def membership(self, connection_id: str, room: str) -> MembershipItem | None:
        """The connection's live membership row of ``room``, or None."""
        row = self._get(self.models.membership, connection_id, keys.membership_sk(room))
        return row if isinstance(row, MembershipItem) else None

    def count_connections(self) -> int:
        """The live connections: a count of each everyone-shard of the audience index
        (Select COUNT: DynamoDB still reads, and charges, every entry it counts)."""
        model = self.models.connection
        now = int(self.clock())
        return sum(
            model.audience.count(
                keys.everyone_index_pk(shard), filter_condition=model.expires_at > now
            )
            for shard in range(keys.EVERYONE_SHARDS)
        )

    def rows(self) -> list[TableItem]:
        """Every row of the table, expired ones included (for tools and tests)."""
        return list(self.models.item.scan(consistent_read=True))

    # -- helpers -----------------------------------------------------------------------

    def _get(self, model: type[TableItem], connection_id: str, sk: str) -> TableItem | None:
        try:
            row = model.get(keys.connection_pk(connection_id), sk, consistent_read=True)
        except model.DoesNotExist:
            return None
        return row if row.expires_at > self.clock() else None

    def _delete_rest_of_partition(self, connection_id: str) -> int:
        """Delete a connection's other rows; return how many were memberships."""
        item = self.models.item
        pk = keys.connection_pk(connection_id)
        rows = [row for row in item.query(pk, consistent_read=True) if row.sk != keys.CONNECTION_SK]
        if rows:
            with item.batch_write() as batch:
                for row in rows:
                    batch.delete(row)
        return sum(isinstance(row, MembershipItem) for row in rows)

    def _delete_rows_quietly(self, rows: list[TableItem]) -> None:
        for row in rows:
            # Best effort: the caller must see the original error; the TTL and the
            # sweep remove whatever a failing backend leaves behind.
            with contextlib.suppress(Exception):
                row.delete()


def _connecting(rows: list[TableItem], young: int) -> bool:
    """True if ``rows`` (a connection's partition, its connection row not deleted) may be a
    $connect's still being written: its connection row is there and young (the delete's
    condition failed on it), or missing while a membership joined after ``young``
    (epoch milliseconds; a batch write lands its rows one by one)."""
    return any(
        isinstance(row, ConnectionItem)
        or (isinstance(row, MembershipItem) and row.joined_at > young)
        for row in rows
    )
