"""The key layout is an API: these are the exact items and the exact table the library makes."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from fanout_core import keys
from fanout_core.history import COUNTER_GRACE_SECONDS, History
from fanout_core.store import ConnectionStore
from fanout_core.table import create_table, describe_table
from tests.support.backends import Backend
from tests.support.clock import FakeClock

NOW = 1_700_000_000.25
ENDPOINT = "https://abc123.execute-api.us-east-1.amazonaws.com/prod"


def raw_items(store: ConnectionStore) -> list[dict[str, Any]]:
    client = boto3.client(
        "dynamodb", endpoint_url=store.config.dynamodb_endpoint, region_name="us-east-1"
    )
    items: list[dict[str, Any]] = client.scan(TableName=store.config.table, ConsistentRead=True)[
        "Items"
    ]
    return sorted(items, key=lambda item: (item["pk"]["S"], item["sk"]["S"]))


def test_exact_items(backend: Backend) -> None:
    config = backend.config(ttl_seconds=7500)
    create_table(config)
    store = ConnectionStore(config, clock=FakeClock(NOW))
    store.connect("L0SM9cOFvHcCIhw=", ENDPOINT, rooms=["lobby"], principal="user-7")
    shard = keys.everyone_shard("L0SM9cOFvHcCIhw=")
    assert raw_items(store) == [
        {
            "pk": {"S": "CONN#L0SM9cOFvHcCIhw="},
            "sk": {"S": "CONN"},
            "type": {"S": "connection"},
            "gsi1pk": {"S": f"ALL#{shard:02d}"},
            "gsi1sk": {"S": "CONN#L0SM9cOFvHcCIhw="},
            "connection_id": {"S": "L0SM9cOFvHcCIhw="},
            "endpoint": {"S": ENDPOINT},
            "connected_at": {"N": "1700000000250"},
            "principal": {"S": "user-7"},
            "expires_at": {"N": "1700007500"},
        },
        {
            "pk": {"S": "CONN#L0SM9cOFvHcCIhw="},
            "sk": {"S": "ROOM#lobby"},
            "type": {"S": "membership"},
            "gsi1pk": {"S": "ROOM#lobby"},
            "gsi1sk": {"S": "CONN#L0SM9cOFvHcCIhw="},
            "connection_id": {"S": "L0SM9cOFvHcCIhw="},
            "endpoint": {"S": ENDPOINT},
            "room": {"S": "lobby"},
            "joined_at": {"N": "1700000000250"},
            "expires_at": {"N": "1700007500"},
        },
        {
            "pk": {"S": "CONN#L0SM9cOFvHcCIhw="},
            "sk": {"S": "USER"},
            "type": {"S": "user"},
            "gsi1pk": {"S": "USER#user-7"},
            "gsi1sk": {"S": "CONN#L0SM9cOFvHcCIhw="},
            "connection_id": {"S": "L0SM9cOFvHcCIhw="},
            "endpoint": {"S": ENDPOINT},
            "principal": {"S": "user-7"},
            "expires_at": {"N": "1700007500"},
        },
    ]


def test_a_membership_keeps_the_position_it_joined_at(backend: Backend) -> None:
    """History on: a membership row also holds the room's seq and epoch when it joined."""
    config = backend.config(ttl_seconds=7500, history_seconds=600)
    create_table(config)
    store = ConnectionStore(config, clock=FakeClock(NOW))
    positions = {"a": (3, 1_699_999_000_000)}
    store.connect("L0SM9cOFvHcCIhw=", ENDPOINT, rooms=["a"], positions=positions)
    store.join("L0SM9cOFvHcCIhw=", "b", position=(0, 1_699_999_500_000))
    rows = {item["sk"]["S"]: item for item in raw_items(store)}
    for sk, seq, epoch in (("ROOM#a", "3", "1699999000000"), ("ROOM#b", "0", "1699999500000")):
        assert (rows[sk]["joined_seq"], rows[sk]["joined_epoch"]) == ({"N": seq}, {"N": epoch})
    assert "joined_seq" not in rows["CONN"]


def test_exact_history_items(backend: Backend) -> None:
    """History on: a scope's counter, its frames, and an idempotency key; none in the index."""
    config = backend.config(history_seconds=600)
    create_table(config)
    clock = FakeClock(NOW)
    history = History(ConnectionStore(config, clock=clock).models, config, clock)
    scope = keys.scope_of("lobby")
    assert history.claim(keys.scope_of(None), "order-42", "m1") is None
    seq = history.next_seq(scope)
    history.keep(scope, seq, b'{"id":"m1","seq":1}')
    assert raw_items(ConnectionStore(config, clock=clock)) == [
        {
            "pk": {"S": "DEDUP#ALL#order-42"},
            "sk": {"S": "DEDUP"},
            "type": {"S": "dedup"},
            "message_id": {"S": "m1"},
            "expires_at": {"N": "1700000600"},  # the dedup window: the history window
        },
        {
            "pk": {"S": "HIST#ROOM#lobby"},
            "sk": {"S": "00000000000000000001"},
            "type": {"S": "history"},
            "seq": {"N": "1"},
            "frame": {"S": '{"id":"m1","seq":1}'},
            "expires_at": {"N": "1700000600"},
        },
        {
            "pk": {"S": "SEQ#ROOM#lobby"},
            "sk": {"S": "SEQ"},
            "type": {"S": "counter"},
            "seq": {"N": "1"},
            "epoch": {"N": "1700000000250"},
            "expires_at": {"N": str(1_700_000_000 + 600 + COUNTER_GRACE_SECONDS)},
        },
    ]
    assert history.next_seq(scope) == 2  # the epoch stays what the first ADD set
    assert history.position(scope).epoch == 1_700_000_000_250


def test_connection_without_principal_has_no_principal_attribute(backend: Backend) -> None:
    config = backend.config()
    create_table(config)
    store = ConnectionStore(config, clock=FakeClock(NOW))
    store.connect("A", ENDPOINT)
    (item,) = raw_items(store)  # and no user row: nobody to list it under
    assert "principal" not in item


def test_exact_table(backend: Backend) -> None:
    config = backend.fresh_config()
    status = create_table(config)
    assert status.created
    shape = describe_table(config)
    assert shape["key_schema"] == {"HASH": "pk", "RANGE": "sk"}
    assert shape["billing_mode"] == "PAY_PER_REQUEST"
    assert len(shape["indexes"]) == 1
    index = shape["indexes"][0]
    assert index["name"] == "audience"
    assert index["key_schema"] == {"HASH": "gsi1pk", "RANGE": "gsi1sk"}
    assert index["projection"]["ProjectionType"] == "INCLUDE"
    assert sorted(index["projection"]["NonKeyAttributes"]) == [
        "connection_id",
        "endpoint",
        "expires_at",
        "type",
    ]


def test_create_table_is_idempotent_and_reports_ttl(backend: Backend) -> None:
    config = backend.fresh_config()
    first = create_table(config)
    second = create_table(config)
    assert (first.created, second.created) == (True, False)
    if backend.name == "dynalite":
        assert first.ttl.startswith("off")  # dynalite has no TTL API
    else:
        assert first.ttl == "ENABLED"
        assert second.ttl == "ENABLED"
        ttl = describe_table(config)["ttl"]
        assert (ttl["AttributeName"], ttl["TimeToLiveStatus"]) == ("expires_at", "ENABLED")


def test_everyone_shards_spread_connections() -> None:
    counts = [0] * keys.EVERYONE_SHARDS
    for i in range(16_000):
        counts[keys.everyone_shard(f"conn-{i}")] += 1
    # No shard holds more than 1.2x its fair share: the listing has no hot partition.
    assert max(counts) < 1.2 * 1000
    assert keys.everyone_index_pk(3) == "ALL#03"
    with pytest.raises(ValueError, match="shard"):
        keys.everyone_index_pk(16)
