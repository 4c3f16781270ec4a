"""The model's pieces: the account's token bucket, Lambda's SQS scaling, pages, posting."""

from __future__ import annotations

import math
from dataclasses import dataclass

from fanout_core import keys
from fanout_core.cost import PAGE_BYTES
from fanout_core.reads import LIBRARY_PAGE_ITEMS
from fanout_core.simulate.platform import Platform
from fanout_core.sizes import ItemSizes, page_read_units

MB = 1024 * 1024


class FluidBucket:
    """API Gateway's account token bucket as a fluid: ``rate`` tokens a second, ``burst`` saved.

    ``rate`` None is no limit. Posts may overdraw it a little within a step (the debt is
    paid from the next refill), as posts already in flight are answered anyway.
    """

    def __init__(self, rate: float | None, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst

    def available(self, seconds: float) -> float:
        """Posts the bucket allows over the next ``seconds``; inf without a limit."""
        if self.rate is None:
            return math.inf
        return max(0.0, self.tokens + self.rate * seconds)

    def spend(self, posts: float, seconds: float) -> None:
        """``seconds`` passed and ``posts`` were let through."""
        if self.rate is not None:
            self.tokens = min(self.burst, self.tokens + self.rate * seconds - posts)

    def seconds_for(self, posts: float) -> float:
        """Seconds until a full bucket has let ``posts`` through, with nothing else posting."""
        if self.rate is None or posts <= self.burst:
            return 0.0
        return (posts - self.burst) / self.rate


def event_source_capacity(platform: Platform, backlog_seconds: float) -> int:
    """Concurrent batches Lambda's SQS event source runs after ``backlog_seconds`` of backlog.

    Five at first, up to 300 more a minute while messages wait, at most the mapping's
    maximum and the region's concurrency.
    """
    grown = platform.sqs_initial_batches + platform.sqs_scale_per_minute * backlog_seconds / 60
    return max(1, min(int(grown), platform.sqs_max_batches, platform.region_concurrency))


@dataclass(frozen=True)
class Partition:
    """One audience index partition (or scan segment) a reader pages through."""

    items: int  # items read (scanned)
    returned: int  # items kept: the audience's
    item_bytes: float  # bytes per item read, as DynamoDB counts them

    def page_items(self, limit: int | None = None) -> int:
        """Items per page: 1 MB of them, or ``limit`` if smaller."""
        per_page = max(1, int(PAGE_BYTES // self.item_bytes))
        return min(per_page, limit) if limit else per_page

    def pages(self, limit: int | None = None) -> list[int]:
        """Items read by each page, first to last (an empty partition still takes one)."""
        per_page = self.page_items(limit)
        full, rest = divmod(self.items, per_page)
        return [per_page] * full + ([rest] if rest or not full else [])


@dataclass(frozen=True)
class ReadPlan:
    """What a strategy reads to resolve one audience: its readers' partitions."""

    partitions: tuple[Partition, ...]
    limit: int | None = None  # items per page (FANOUT_PAGE_SIZE, a worker's page)
    concurrent: bool = False  # the partitions are read at once (threads), not in turn
    tree: bool = False  # sqs_batched: a partition past a page also reads its largest key

    def _cut(self, part: Partition) -> bool:
        return self.tree and part.items > part.page_items(self.limit)

    @property
    def largest_key_reads(self) -> int:
        """The tree's reads of a partition's largest key: one per partition past a page."""
        return sum(self._cut(p) for p in self.partitions)

    @property
    def returned(self) -> int:
        """Targets found."""
        return sum(p.returned for p in self.partitions)

    @property
    def requests(self) -> int:
        """Query/Scan requests."""
        return sum(len(p.pages(self.limit)) for p in self.partitions) + self.largest_key_reads

    @property
    def read_units(self) -> float:
        """Read units, 0.5 per 4 KB per page, rounded up per page."""
        pages = sum(
            page_read_units(math.ceil(items * p.item_bytes))
            for p in self.partitions
            for items in p.pages(self.limit)
        )
        largest = sum(
            page_read_units(math.ceil(p.item_bytes)) for p in self.partitions if self._cut(p)
        )
        return pages + largest

    @property
    def megabytes(self) -> float:
        """MB read, before any filter."""
        return sum(p.items * p.item_bytes for p in self.partitions) / MB


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if part < total % parts else 0) for part in range(parts)]


def read_plan(
    strategy: str,
    connections: int,
    audience: int | None,
    platform: Platform,
    sizes: ItemSizes | None = None,
) -> ReadPlan:
    """The partitions ``strategy`` reads for a room of ``audience`` (None: everyone).

    One room per connection, as ``fanout cost`` assumes: a scan reads a connection row
    and a membership row per connection.
    """
    sizes = sizes or ItemSizes.sample()
    if strategy in ("full_scan", "parallel_scan"):
        rows = 2 * connections
        row_bytes = (sizes.connection + sizes.membership) / 2
        kept = connections if audience is None else audience
        parts = platform.segments if strategy == "parallel_scan" else 1
        return ReadPlan(
            tuple(
                Partition(items, share, row_bytes)
                for items, share in zip(_split(rows, parts), _split(kept, parts), strict=True)
            ),
            concurrent=parts > 1,
        )
    tree = strategy == "sqs_batched"
    limit = platform.page_items if tree else None
    if audience is not None:
        return ReadPlan((Partition(audience, audience, sizes.membership_entry),), limit, tree=tree)
    shards = _split(connections, keys.EVERYONE_SHARDS)
    concurrent = tree or platform.concurrent_shards
    if concurrent and not tree:
        limit = LIBRARY_PAGE_ITEMS  # gsi_query's concurrent shard reads (GsiQuery)
    return ReadPlan(
        tuple(Partition(n, n, sizes.connection_entry) for n in shards), limit, concurrent, tree
    )


def page_seconds(items: int, returned: int, item_bytes: float, platform: Platform) -> float:
    """One page's round trip: the request, the service's time for its bytes, decoding."""
    return (
        platform.read_request
        + items * item_bytes / MB * platform.read_seconds_per_mb
        + returned * platform.decode_cpu_per_item / platform.cpu_share
    )


def post_rate(posts: float, platform: Platform) -> float:
    """Posts a second one invocation reaches posting ``posts`` targets by itself."""
    return posts / post_seconds_alone(posts, platform) if posts else 0.0


def post_seconds_alone(posts: float, platform: Platform) -> float:
    """Seconds to post ``posts`` targets with no account limit: rounds of the window, CPU, cap."""
    if posts <= 0:
        return 0.0
    rounds = math.ceil(posts / platform.concurrency) * platform.post_latency
    cpu = posts * platform.post_cpu / platform.cpu_share
    capped = posts / platform.max_posts_per_second if platform.max_posts_per_second else 0.0
    return max(rounds, cpu, capped)


def post_seconds(posts: int, platform: Platform) -> float:
    """Seconds one invocation takes to post ``posts`` targets, the account's bucket included."""
    bucket = FluidBucket(platform.account_rate, platform.account_burst).seconds_for(posts)
    return max(post_seconds_alone(posts, platform), bucket + platform.post_latency if bucket else 0)
