"""A cost model: dollars per million messages for each strategy, from reads, requests and posts.

The read formulas are the ones ``benchmarks/`` checks against dynalite's ConsumedCapacity:
item sizes as DynamoDB counts them, 0.5 read unit per 4 KB per page (eventually consistent
reads, rounded up per request, at least 0.5 per request), 1 MB pages. The items are the
library's own rows (``fanout_core.models``), the SQS limits ``fanout_core.queue``'s. Free
tiers and data transfer are left out. ``fanout cost`` prints it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from fanout_core import keys, queue
from fanout_core.config import ANSWER_BYTES_PER_TOKEN
from fanout_core.history import PAGE_ITEMS as HISTORY_PAGE_ITEMS
from fanout_core.reads import LIBRARY_PAGE_ITEMS
from fanout_core.sizes import (
    SAMPLE_CONNECTION_ID,
    SAMPLE_ENDPOINT,
    ItemSizes,
    history_items,
    page_read_units,
    write_units,
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
PAGE_BYTES = 1024 * 1024
LAMBDA_BATCH_SIZE = 10  # template.yaml's BatchSize for the sqs_worker (tests/test_template.py)
TARGETS_PER_QUEUE_MESSAGE = queue.TARGETS_PER_MESSAGE
ENTRIES_PER_SEND_CALL = queue.MAX_ENTRIES_PER_CALL
STRATEGIES = tuple(BUILTIN_STRATEGIES)
# A history.end frame: its id, event, room, seq, epoch and complete.
HISTORY_END_BYTES = 150


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


def _partition(
    items: int, item_bytes: float, page_size: int | None, *, tree: bool
) -> tuple[int, float]:
    """One audience partition: sqs_batched's tree reads pages of LIBRARY_PAGE_ITEMS, and a
    partition past its first page costs one more request for its largest key (ranges)."""
    if not tree:
        return _paged(items, item_bytes, page_size)
    per_page = page_size or LIBRARY_PAGE_ITEMS
    requests, units = _paged(items, item_bytes, per_page)
    if items > per_page:
        requests, units = requests + 1, units + page_read_units(math.ceil(item_bytes))
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
        tree = strategy == "sqs_batched"
        if user is not None:
            entry = sizes.user_entry or sizes.membership_entry
            requests, units = _partition(user, entry, page_size, tree=tree)
            return ReadEstimate(requests, user, user, units)
        if not everyone:
            requests, units = _partition(audience, sizes.membership_entry, page_size, tree=tree)
            return ReadEstimate(requests, audience, audience, units)
        requests, units = 0, 0.0
        shards = keys.EVERYONE_SHARDS
        # gsi_query reads the shards at once, in pages of LIBRARY_PAGE_ITEMS (GsiQuery).
        shard_pages = page_size or LIBRARY_PAGE_ITEMS
        for shard in range(shards):
            share = connections // shards + (1 if shard < connections % shards else 0)
            r, u = _partition(share, sizes.connection_entry, shard_pages, tree=tree)
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
    history: bool = False  # FANOUT_HISTORY_SECONDS > 0: the room's counter and the frame
    idempotency: bool = False  # each message carries an idempotency key: one put more


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
    write_units: float = 0.0  # besides the fan-out's: the send bucket, history, the key

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
    writes = extra_write_units(workload)
    dollars = {
        "dynamodb": (
            reads.read_units * DYNAMODB_READ_PER_MILLION_RRU
            + writes * DYNAMODB_WRITE_PER_MILLION_WRU
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
        writes,
    )


def extra_write_units(workload: Workload) -> float:
    """Writes a message makes besides the fan-out's (which writes only to delete 410s)."""
    counter_bytes, history_bytes, dedup_bytes = history_items(workload.frame_bytes)
    units = 0.0
    if workload.rate_limit:
        # The bucket row is under 1 KB: one update per send, passed or not (a refused
        # conditional update is billed too).
        units += 1
    if workload.history:
        units += write_units(counter_bytes) + write_units(history_bytes)
    if workload.idempotency:
        units += write_units(dedup_bytes)
    return units


@dataclass(frozen=True)
class ResumeCost:
    """A client's resume of ``frames`` frames of one room (``history``)."""

    frames: int
    requests: int  # read requests: GetItem of its membership and of the counter, Query pages
    read_units: float  # strongly consistent reads: 1 unit per 4 KB
    posts: int  # the frames, then history.end
    lambda_gb_seconds: float  # the history handler's run: its reads, then one post at a time
    write_units: float  # with FANOUT_RATE_LIMIT: the connection's token, and its charge
    dollars: float


def resume_cost(frames: int, workload: Workload) -> ResumeCost:
    """What a resume of ``frames`` frames costs: its reads, posts, and the handler's time."""
    _, history_bytes, _ = history_items(workload.frame_bytes)
    pages = max(1, math.ceil(frames / HISTORY_PAGE_ITEMS))
    units = 2 * page_read_units(workload.sizes.membership, consistent=True)  # two GetItems
    for page in range(pages):
        items = min(HISTORY_PAGE_ITEMS, frames - page * HISTORY_PAGE_ITEMS)
        units += page_read_units(items * history_bytes, consistent=True)
    increments = max(1, math.ceil(workload.frame_bytes / APIGW_MESSAGE_INCREMENT_BYTES))
    posts = frames + 1
    # The bucket row is under 1 KB: its token, and past 32 KB posted, one update charging
    # the rest (fanout_core.tokens).
    posted = frames * workload.frame_bytes + HISTORY_END_BYTES
    writes = 0.0
    if workload.rate_limit:
        writes = 1.0 + (posted > ANSWER_BYTES_PER_TOKEN)
    # The handler posts one frame at a time, each after the last, so nothing overlaps: every
    # post is billed its whole round trip, every read and the token update theirs.
    round_trips = 2 + pages + int(writes)
    seconds = round_trips * workload.read_request_seconds + posts * max(
        workload.post_latency_seconds, workload.post_cpu_seconds
    )
    gb_seconds = seconds * workload.lambda_memory_mb / 1024
    dollars = (
        units * DYNAMODB_READ_PER_MILLION_RRU
        + writes * DYNAMODB_WRITE_PER_MILLION_WRU
        + (1 + posts * increments) * APIGW_MESSAGE_PER_MILLION
        + LAMBDA_REQUEST_PER_MILLION
    ) / 1e6 + gb_seconds * LAMBDA_GB_SECOND
    return ResumeCost(frames, 2 + pages, units, posts, gb_seconds, writes, dollars)


def connection_minutes_per_day(workload: Workload) -> tuple[float, float]:
    """(minutes, dollars) a day for keeping every connection open all day."""
    minutes = workload.connections * 24 * 60
    return minutes, minutes * APIGW_CONNECTION_MINUTE_PER_MILLION / 1e6


def cost_table(workload: Workload) -> list[StrategyCost]:
    """The model for every built-in strategy."""
    return [strategy_cost(name, workload) for name in STRATEGIES]


GAUGES_PER_MONTH = 12 * 24 * 30  # open_connections runs every 5 minutes


@dataclass(frozen=True)
class GaugeCost:
    """What the OpenConnections gauge costs at ``connections``."""

    connections: int
    read_units: float  # one count: every everyone-shard read to its end
    read_units_per_month: float
    dollars_per_month: float  # DynamoDB reads, and its Lambda invocations at 256 MB


def open_connections_cost(
    connections: int, *, sizes: ItemSizes | None = None, seconds: float = 1.0
) -> GaugeCost:
    """The count every 5 minutes: a COUNT Query of each everyone-shard, eventually
    consistent, 1 MB pages (DynamoDB charges for every entry it counts)."""
    entry = (sizes or ItemSizes.sample()).connection_entry
    per_shard, extra = divmod(connections, keys.EVERYONE_SHARDS)
    units = sum(
        _paged(per_shard + (shard < extra), entry, None)[1] for shard in range(keys.EVERYONE_SHARDS)
    )
    per_month = units * GAUGES_PER_MONTH
    lambda_dollars = GAUGES_PER_MONTH * (
        LAMBDA_REQUEST_PER_MILLION / 1e6 + seconds * 0.25 * LAMBDA_GB_SECOND
    )
    dollars = per_month * DYNAMODB_READ_PER_MILLION_RRU / 1e6 + lambda_dollars
    return GaugeCost(connections, units, per_month, dollars)
