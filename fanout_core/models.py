"""PynamoDB models of the single table: connections, memberships, users' listings, send
buckets, and (history on) counters, frames and idempotency keys.

The classes here declare the attributes. ``bind_models`` makes a family of concrete
models for one table and endpoint, each family with its own discriminator, so two
tables (or two backends in one test run) never share a cached connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, cast

from pynamodb.attributes import DiscriminatorAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.indexes import GlobalSecondaryIndex, IncludeProjection
from pynamodb.models import MetaModel, Model

from fanout_core import keys
from fanout_core._private import dynamodb_client, share_connection

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

AUDIENCE_INDEX = "audience"
CONNECTION_TYPE = "connection"
MEMBERSHIP_TYPE = "membership"
USER_TYPE = "user"
RATE_TYPE = "rate"
COUNTER_TYPE = "counter"
HISTORY_TYPE = "history"
DEDUP_TYPE = "dedup"
# What the audience index carries besides its keys: all a fan-out needs to post and to
# skip expired rows, so a fan-out never reads the table itself.
AUDIENCE_PROJECTED = ("type", "connection_id", "endpoint", "expires_at")


class AudienceIndex(GlobalSecondaryIndex["TableItem"]):  # type: ignore[no-untyped-call]
    """Lists a room's members (``ROOM#name``), a principal's connections (``USER#id``) and
    every connection by shard (``ALL#nn``)."""

    class Meta:
        index_name = AUDIENCE_INDEX
        projection = IncludeProjection(list(AUDIENCE_PROJECTED))

    gsi1pk = UnicodeAttribute(hash_key=True)
    gsi1sk = UnicodeAttribute(range_key=True)


class TableItem(Model):
    """Attributes of the rows: every row has keys and ``expires_at``; a listed row (a
    connection, a membership, a user's listing) also its index keys, id and endpoint."""

    item_type: DiscriminatorAttribute  # "type": one per family of models (bind_models)
    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    gsi1pk = UnicodeAttribute(null=True)
    gsi1sk = UnicodeAttribute(null=True)
    connection_id = UnicodeAttribute(null=True)
    # The callback URL of the connection's API (https://{domainName}/{stage}).
    endpoint = UnicodeAttribute(null=True)
    # TTL attribute, epoch seconds. Reads filter on it: DynamoDB deletes late.
    expires_at = NumberAttribute()
    audience = AudienceIndex()


class ConnectionItem(TableItem):
    """One row per open WebSocket connection."""

    connected_at = NumberAttribute()  # epoch milliseconds, as API Gateway's connectedAt
    principal = UnicodeAttribute(null=True)


class MembershipItem(TableItem):
    """One row per (connection, room)."""

    room = UnicodeAttribute()
    joined_at = NumberAttribute()  # epoch milliseconds
    # The room's position (history on) read before the row was written: the member
    # receives every frame after it, live or by a resume. Rows written without history
    # have none.
    joined_seq = NumberAttribute(null=True)
    joined_epoch = NumberAttribute(null=True)


class RateItem(TableItem):
    """A connection's send bucket (``fanout_core.ratelimit``): not listed in the index."""

    tat = NumberAttribute()  # GCRA's theoretical arrival time, epoch microseconds


class CounterItem(TableItem):
    """A scope's sequence counter: the seq of its latest frame (``fanout_core.history``)."""

    seq = NumberAttribute()
    epoch = NumberAttribute(null=True)  # when it started, epoch ms: set by its first ADD


class HistoryItem(TableItem):
    """One retained frame of a scope, as it was first sent."""

    seq = NumberAttribute()
    frame = UnicodeAttribute()


class DedupItem(TableItem):
    """A publish's idempotency key: the id of the message it first published."""

    message_id = UnicodeAttribute()


class UserItem(TableItem):
    """One row per connection that has a principal: lists it under ``USER#<principal>``."""

    principal = UnicodeAttribute()


@dataclass(frozen=True)
class Models:
    """The concrete models of one table, sharing one botocore client."""

    item: type[TableItem]
    connection: type[ConnectionItem]
    membership: type[MembershipItem]
    user: type[UserItem]
    rate: type[RateItem]
    counter: type[CounterItem]
    history: type[HistoryItem]
    dedup: type[DedupItem]

    @property
    def client(self) -> DynamoDBClient:
        """The botocore DynamoDB client the models call through."""
        return dynamodb_client(self.item)


@lru_cache(maxsize=64)
def bind_models(
    table: str,
    *,
    host: str | None = None,
    region: str = "us-east-1",
    credentials: tuple[str, str] | None = None,
) -> Models:
    """Concrete models for ``table`` at ``host`` (None: AWS), cached per argument set."""
    meta: dict[str, Any] = {
        "table_name": table,
        "host": host,
        "region": region,
        "billing_mode": "PAY_PER_REQUEST",
        "max_retry_attempts": 8,
        "connect_timeout_seconds": 5,
        "read_timeout_seconds": 10,
        # Delivery threads delete gone connections concurrently; a small pool would churn.
        "max_pool_connections": 64,
    }
    if credentials is not None:
        meta["aws_access_key_id"], meta["aws_secret_access_key"] = credentials
    namespace: dict[str, Any] = {
        "__module__": __name__,
        "Meta": type("Meta", (), meta),
        # A fresh discriminator per family: PynamoDB keeps its class map on the attribute.
        "item_type": DiscriminatorAttribute(attr_name="type"),
    }
    item = MetaModel(f"Item[{table}]", (TableItem,), namespace)
    module = {"__module__": __name__}
    connection = MetaModel(
        f"Connection[{table}]", (item, ConnectionItem), dict(module), discriminator=CONNECTION_TYPE
    )
    membership = MetaModel(
        f"Membership[{table}]", (item, MembershipItem), dict(module), discriminator=MEMBERSHIP_TYPE
    )
    user = MetaModel(f"User[{table}]", (item, UserItem), dict(module), discriminator=USER_TYPE)
    rate = MetaModel(f"Rate[{table}]", (item, RateItem), dict(module), discriminator=RATE_TYPE)
    counter = MetaModel(
        f"Counter[{table}]", (item, CounterItem), dict(module), discriminator=COUNTER_TYPE
    )
    history = MetaModel(
        f"History[{table}]", (item, HistoryItem), dict(module), discriminator=HISTORY_TYPE
    )
    dedup = MetaModel(f"Dedup[{table}]", (item, DedupItem), dict(module), discriminator=DEDUP_TYPE)
    models = Models(
        item=cast(type[TableItem], item),
        connection=cast(type[ConnectionItem], connection),
        membership=cast(type[MembershipItem], membership),
        user=cast(type[UserItem], user),
        rate=cast(type[RateItem], rate),
        counter=cast(type[CounterItem], counter),
        history=cast(type[HistoryItem], history),
        dedup=cast(type[DedupItem], dedup),
    )
    # One connection (one botocore client) for the family, not one per class: each
    # client costs a service-model load at cold start.
    share_connection(
        (
            models.item,
            models.connection,
            models.membership,
            models.user,
            models.rate,
            models.counter,
            models.history,
            models.dedup,
        )
    )
    return models


def _listed(connection_id: str, endpoint: str, sk: str, index_pk: str) -> dict[str, Any]:
    """The attributes every row of a connection has: its keys, id and callback URL."""
    return {
        "pk": keys.connection_pk(connection_id),
        "sk": sk,
        "gsi1pk": index_pk,
        "gsi1sk": keys.index_sk(connection_id),
        "connection_id": connection_id,
        "endpoint": endpoint,
    }


def connection_row(
    models: Models,
    connection_id: str,
    endpoint: str,
    *,
    expires_at: int,
    connected_at: int,
    principal: str | None = None,
) -> ConnectionItem:
    """The row of a new connection, listed under its everyone-shard."""
    shard = keys.everyone_index_pk(keys.everyone_shard(connection_id))
    return models.connection(
        **_listed(connection_id, endpoint, keys.CONNECTION_SK, shard),
        expires_at=expires_at,
        connected_at=connected_at,
        principal=principal,
    )


def membership_row(
    models: Models,
    connection_id: str,
    endpoint: str,
    room: str,
    *,
    expires_at: int,
    joined_at: int,
    position: tuple[int, int] | None = None,
) -> MembershipItem:
    """The row of a connection's membership of ``room``, listed under the room, with the
    room's (seq, epoch) ``position`` when it joined (history on)."""
    seq, epoch = position if position is not None else (None, None)
    return models.membership(
        **_listed(connection_id, endpoint, keys.membership_sk(room), keys.room_index_pk(room)),
        expires_at=expires_at,
        room=room,
        joined_at=joined_at,
        joined_seq=seq,
        joined_epoch=epoch,
    )


def user_row(
    models: Models, connection_id: str, endpoint: str, principal: str, *, expires_at: int
) -> UserItem:
    """The row that lists a connection under its principal."""
    return models.user(
        **_listed(connection_id, endpoint, keys.USER_SK, keys.user_index_pk(principal)),
        expires_at=expires_at,
        principal=principal,
    )
