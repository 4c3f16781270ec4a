"""A cost model: dollars per million messages for each strategy, from reads, requests and posts.

The read formulas are the ones ``benchmarks/`` checks against dynalite's ConsumedCapacity:
item sizes as DynamoDB counts them, 0.5 read unit per 4 KB per page (eventually consistent
reads, rounded up per request, at least 0.5 per request), 1 MB pages. The items are the
library's own rows (``fanout_core.models``), the SQS limits ``fanout_core.queue``'s. Free
tiers and data transfer are left out. ``fanout cost`` prints it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from pynamodb.attributes import Attribute

from fanout_core import keys, queue
from fanout_core.models import (
    AUDIENCE_PROJECTED,
    AudienceIndex,
    TableItem,
    bind_models,
    connection_row,
    membership_row,
    user_row,
)
from fanout_core.strategy import BUILTIN_STRATEGIES

# Prices: us-east-1, on demand, looked up 2026-11-28; one line each, with its source (figures
# as published on that page).
DYNAMODB_READ_PER_MILLION_RRU = 0.125  # aws.amazon.com/dynamodb/pricing/on-demand (Nov 2024 cut)
DYNAMODB_WRITE_PER_MILLION_WRU = 0.625  # aws.amazon.com/dynamodb/pricing/on-demand (Nov 2024 cut)
APIGW_MESSAGE_PER_MILLION = 1.00  # aws.amazon.com/api-gateway/pricing (WebSocket, first billion)
APIGW_MESSAGE_INCREMENT_BYTES = 32 * 1024  # aws.amazon.com/api-gateway/pricing: 32 KB units
APIGW_CONNECTION_MINUTE_PER_MILLION = 0.25  # aws.amazon.com/api-gateway/pricing (WebSocket)
LAMBDA_GB_SECOND = 0.0000166667  # aws.amazon.com/lambda/pricing (x86)
LAMBDA_REQUEST_PER_MILLION = 0.20  # aws.amazon.com/lambda/pricing
SQS_REQUEST_PER_MILLION = 0.40  # aws.amazon.com/sqs/pricing (standard queue)
SQS_CHUNK_BYTES = 64 * 1024  # aws.amazon.com/sqs/pricing: each 64 KB chunk is a request

# -- DynamoDB read accounting (developer guide: "Read/write operations", "Query", "Scan") --
READ_UNIT_BYTES = 4096
READ_UNIT_EVENTUAL = 0.5
PAGE_BYTES = 1024 * 1024
LAMBDA_BATCH_SIZE = 10  # template.yaml's BatchSize for the sqs_worker (tests/test_template.py)
TARGETS_PER_QUEUE_MESSAGE = queue.TARGETS_PER_MESSAGE
ENTRIES_PER_SEND_CALL = queue.MAX_ENTRIES_PER_CALL
STRATEGIES = tuple(BUILTIN_STRATEGIES)

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


def page_read_units(page_bytes: int) -> float:
    """Read units of one Query/Scan page: 0.5 per 4 KB read, rounded up, at least 0.5."""
    return max(1, math.ceil(page_bytes / READ_UNIT_BYTES)) * READ_UNIT_EVENTUAL


@dataclass(frozen=True)
class ReadEstimate:
    """What resolving an audience reads."""

    requests: int
    items_scanned: int
    items_returned: int
    read_units: float


def _paged(items: int, item_bytes: float, page_size: int | None) -> tuple[int, float]:
    """(requests, read units) to read ``items`` of ``item_bytes`` each, page by page."""
    per_page = max(1, int(PAGE_BYTES // item_bytes))
    if page_size is not None:
        per_page = min(per_page, page_size)
    full, rest = divmod(items, per_page)
    requests = full + (1 if rest or not full else 0)
    units = full * page_read_units(math.ceil(per_page * item_bytes))
    if rest or not full:
        units += page_read_units(math.ceil(rest * item_bytes))
    return requests, units


def estimate_reads(
    strategy: str,
    *,
    connections: int,
    room_size: int,
    everyone: bool = False,
    sizes: ItemSizes | None = None,
    memberships_per_connection: int = 1,
    segments: int = 4,
    page_size: int | None = None,
    user: int | None = None,
) -> ReadEstimate:
    """Requests, items and read units to resolve one audience with ``strategy``.

    The audience is a room of ``room_size``, everyone, or (``user``) one principal's
    connections. full_scan reads the whole table (every row, before the filter);
    parallel_scan the same in ``segments`` parts, each paged on its own; gsi_query and
    sqs_batched read only the audience's index entries: the room's, the user's, or the 16
    everyone-shards.
    """
    sizes = sizes or ItemSizes.sample()
    audience = connections if everyone else min(room_size, connections)
    if user is not None:
        audience = user
    if strategy in ("full_scan", "parallel_scan"):
        memberships = connections * memberships_per_connection
        rows = connections + memberships
        row_bytes = (connections * sizes.connection + memberships * sizes.membership) / max(rows, 1)
        parts = segments if strategy == "parallel_scan" else 1
        requests, units = 0, 0.0
        for part in range(parts):
            share = rows // parts + (1 if part < rows % parts else 0)
            r, u = _paged(share, row_bytes, page_size)
            requests, units = requests + r, units + u
        return ReadEstimate(requests, rows, audience, units)
    if strategy in ("gsi_query", "sqs_batched"):
        if user is not None:
            requests, units = _paged(user, sizes.user_entry or sizes.membership_entry, page_size)
            return ReadEstimate(requests, user, user, units)
        if not everyone:
            requests, units = _paged(audience, sizes.membership_entry, page_size)
            return ReadEstimate(requests, audience, audience, units)
        requests, units = 0, 0.0
        shards = keys.EVERYONE_SHARDS
        for shard in range(shards):
            share = connections // shards + (1 if shard < connections % shards else 0)
            r, u = _paged(share, sizes.connection_entry, page_size)
            requests, units = requests + r, units + u
        return ReadEstimate(requests, connections, connections, units)
    raise ValueError(f"no cost model for strategy {strategy!r}; use one of {STRATEGIES}")


# -- the whole fan-out ---------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """What is fanned out, how often, and how the functions run."""

    connections: int
    room_size: int
    messages_per_day: float
    everyone: bool = False
    frame_bytes: int = 200
    concurrency: int = 32
    post_latency_seconds: float = 0.020  # one Management API round trip (assumed)
    # CPU per post in the function: AsyncHttpPoster measured 0.2-0.3 ms on the benchmark
    # machine, BotoPoster ~1 ms (docs/benchmarks.md, "Delivery throughput"): pass your own.
    post_cpu_seconds: float = 0.0002
    read_request_seconds: float = 0.010  # one Query/Scan page round trip (assumed)
    sqs_request_seconds: float = 0.010  # one SendMessageBatch round trip (assumed)
    lambda_memory_mb: int = 256  # template.yaml's MemorySize (tests/test_template.py)
    segments: int = 4
    sizes: ItemSizes = field(default_factory=ItemSizes.sample)
    rate_limit: bool = False  # FANOUT_RATE_LIMIT: the sender's bucket, one write per send


@dataclass(frozen=True)
class StrategyCost:
    """One message fanned out by one strategy, and its price."""

    strategy: str
    reads: ReadEstimate
    posts: int
    apigw_messages: int
    sqs_requests: int
    lambda_invocations: int
    lambda_gb_seconds: float
    dollars: dict[str, float]  # per message, by service
    write_units: float = 0.0  # besides the fan-out's: the send bucket

    @property
    def per_message(self) -> float:
        """Dollars for one message."""
        return sum(self.dollars.values())

    @property
    def per_million(self) -> float:
        """Dollars per million messages."""
        return self.per_message * 1_000_000


def _post_seconds(posts: int, workload: Workload) -> float:
    # Billed wall time: posts overlap up to `concurrency`, and each costs at least its CPU.
    per_post = max(workload.post_latency_seconds / workload.concurrency, workload.post_cpu_seconds)
    return posts * per_post


def queue_message_bytes(ids: int, workload: Workload) -> int:
    """Body bytes of one sqs_batched message of ``ids`` ids, as ``fanout_core.queue`` encodes it."""
    # A frame of plain characters: the quotes of a real one, escaped in the body, add a few.
    frame = b"x" * workload.frame_bytes
    batch = queue.Batch(frame, SAMPLE_ENDPOINT, (SAMPLE_CONNECTION_ID,) * ids)
    return len(batch.encode().encode())


def strategy_cost(strategy: str, workload: Workload) -> StrategyCost:
    """The modelled cost of one message fanned out with ``strategy``."""
    reads = estimate_reads(
        strategy,
        connections=workload.connections,
        room_size=workload.room_size,
        everyone=workload.everyone,
        sizes=workload.sizes,
        segments=workload.segments,
    )
    posts = reads.items_returned
    increments = max(1, math.ceil(workload.frame_bytes / APIGW_MESSAGE_INCREMENT_BYTES))
    apigw_messages = 1 + posts * increments  # the sender's frame in, one post per recipient
    memory_gb = workload.lambda_memory_mb / 1024
    read_seconds = reads.requests * workload.read_request_seconds
    if strategy == "parallel_scan":
        read_seconds /= workload.segments
    sqs_requests = 0
    invocations = 1
    if strategy == "sqs_batched":
        queue_messages = math.ceil(posts / TARGETS_PER_QUEUE_MESSAGE)
        calls = math.ceil(queue_messages / ENTRIES_PER_SEND_CALL)
        call_bytes = min(ENTRIES_PER_SEND_CALL, queue_messages) * queue_message_bytes(
            min(TARGETS_PER_QUEUE_MESSAGE, posts), workload
        )
        send = calls * max(1, math.ceil(call_bytes / SQS_CHUNK_BYTES))
        worker_batches = math.ceil(queue_messages / LAMBDA_BATCH_SIZE)
        # A receive and a delete per worker batch; empty long-poll receives are left out.
        sqs_requests = send + 2 * worker_batches
        invocations += worker_batches
        sender_seconds = read_seconds + calls * workload.sqs_request_seconds
        gb_seconds = (sender_seconds + _post_seconds(posts, workload)) * memory_gb
    else:
        # Pages are read while earlier targets are posted: the longer of the two is billed.
        gb_seconds = max(read_seconds, _post_seconds(posts, workload)) * memory_gb
    # The bucket row is under 1 KB: one write unit per send, passed or not (a refused
    # conditional update is billed too). A burst sends a second update: not modelled.
    write_units = 1.0 if workload.rate_limit else 0.0
    dollars = {
        "dynamodb": (
            reads.read_units * DYNAMODB_READ_PER_MILLION_RRU
            + write_units * DYNAMODB_WRITE_PER_MILLION_WRU
        )
        / 1e6,
        "apigateway": apigw_messages * APIGW_MESSAGE_PER_MILLION / 1e6,
        "lambda": invocations * LAMBDA_REQUEST_PER_MILLION / 1e6 + gb_seconds * LAMBDA_GB_SECOND,
        "sqs": sqs_requests * SQS_REQUEST_PER_MILLION / 1e6,
    }
    return StrategyCost(
        strategy,
        reads,
        posts,
        apigw_messages,
        sqs_requests,
        invocations,
        gb_seconds,
        dollars,
        write_units,
    )


def connection_minutes_per_day(workload: Workload) -> tuple[float, float]:
    """(minutes, dollars) a day for keeping every connection open all day."""
    minutes = workload.connections * 24 * 60
    return minutes, minutes * APIGW_CONNECTION_MINUTE_PER_MILLION / 1e6


def cost_table(workload: Workload) -> list[StrategyCost]:
    """The model for every built-in strategy."""
    return [strategy_cost(name, workload) for name in STRATEGIES]
