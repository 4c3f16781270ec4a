"""``simulate``: one message fanned out by one strategy, on a ``Platform``.

The direct strategies (full_scan, gsi_query, parallel_scan) read and post from the sending
invocation, a fluid pipeline: the first page, then the longer of reading the rest, posting
(rounds of ``concurrency`` posts, their CPU, the account's bucket) and the CPU of both.
Deliveries land evenly from the first post to the last. sqs_batched runs the fan-out tree
(``fanout_core.simulate.tree``).
"""

from __future__ import annotations

from fanout_core.simulate.outcome import Deliveries, Outcome
from fanout_core.simulate.pieces import ReadPlan, page_seconds, post_seconds, read_plan
from fanout_core.simulate.platform import Platform
from fanout_core.simulate.tree import TreeRun
from fanout_core.sizes import ItemSizes

STRATEGIES = ("full_scan", "gsi_query", "parallel_scan", "sqs_batched")
DIRECT = ("full_scan", "gsi_query", "parallel_scan")


def audience_label(audience: int | None) -> str:
    """``room of 1,000``, or ``everyone``."""
    return "everyone" if audience is None else f"room of {audience:,}"


def simulate(
    strategy: str,
    connections: int,
    room_size: int | None,
    platform: Platform | None = None,
    sizes: ItemSizes | None = None,
) -> Outcome:
    """One message to a room of ``room_size`` (None: everyone) of ``connections``."""
    if strategy not in STRATEGIES:
        raise ValueError(f"no model for strategy {strategy!r}; use one of {STRATEGIES}")
    if connections < 1 or (room_size is not None and not 1 <= room_size <= connections):
        raise ValueError(f"a room of {room_size} among {connections} connections")
    platform = platform or Platform()
    plan = read_plan(strategy, connections, room_size, platform, sizes)
    outcome = Outcome(strategy, connections, plan.returned, audience_label(room_size))
    if strategy == "sqs_batched":
        return TreeRun(plan, platform, outcome).run()
    return direct(plan, platform, outcome)


def _page_times(plan: ReadPlan, platform: Platform) -> list[list[tuple[float, int]]]:
    """Each reader's pages: (seconds, targets returned)."""
    pages = []
    for part in plan.partitions:
        reader = []
        for items in part.pages(plan.limit):
            kept = items * part.returned // max(part.items, 1)
            reader.append((page_seconds(items, kept, part.item_bytes, platform), kept))
        pages.append(reader)
    return pages


def read_seconds(plan: ReadPlan, platform: Platform) -> tuple[float, float, float]:
    """(first page, all pages, their decoding CPU) of the sending invocation's reads."""
    times = [[seconds for seconds, _ in reader] for reader in _page_times(plan, platform)]
    decode = plan.returned * platform.decode_cpu_per_item / platform.cpu_share
    first = min(t[0] for t in times)
    if not plan.concurrent:
        return first, sum(map(sum, times)), decode
    # Readers on threads: the longest reader, unless the backend serves fewer at once; the
    # decoding shares one process's CPU whatever the threads.
    readers = len(times)
    at_once = min(readers, platform.read_parallelism or readers)
    io = sum(map(sum, times)) - decode
    return first, max(max(map(sum, times)), io / at_once + decode), decode


def _one_reader(plan: ReadPlan, platform: Platform) -> float:
    """Pages read in turn by the thread that hands posts on: it reads the next page only
    when all but the last window of this page's posts have started."""
    seconds = 0.0
    for reader in _page_times(plan, platform):
        for read, kept in reader:
            seconds += read + max(0.0, post_seconds(kept, platform) - platform.post_latency)
    return seconds + platform.post_latency


def direct(plan: ReadPlan, platform: Platform, outcome: Outcome) -> Outcome:
    """The sending invocation reads and posts: a pipeline of pages into bounded delivery."""
    first, reads, decode = read_seconds(plan, platform)
    posts = plan.returned
    posting = post_seconds(posts, platform)
    cpu = posts * platform.post_cpu / platform.cpu_share + decode
    latency = platform.post_latency if posts else 0.0
    start = platform.fanout_overhead
    if plan.concurrent:  # readers fill a bounded queue while the posts go on
        busy = max(reads + latency, first + posting)
    else:
        busy = max(_one_reader(plan, platform), first + posting)
    end = start + max(busy, cpu + latency)
    outcome.dynamodb_requests = plan.requests
    outcome.read_units = plan.read_units
    deliveries = Deliveries()
    limit = platform.lambda_max_seconds
    if end > limit:
        # Lambda stops the invocation: only what landed by then is delivered.
        landed = posts * (limit - start - first - latency) / (end - start - first - latency)
        deliveries.add(start + first + latency, limit, max(0.0, landed))
        outcome.over_lambda_limit = True
        outcome.notes.append(f"stopped by Lambda at {limit:g} s: {posts - landed:,.0f} not sent")
    else:
        deliveries.add(start + first + latency, end, posts)
    outcome.record(deliveries)
    outcome.sender_seconds = min(end, limit)
    outcome.seconds = max(outcome.seconds, outcome.sender_seconds if not posts else 0.0)
    outcome.over_integration_timeout = end > platform.integration_timeout
    outcome.gb_seconds = outcome.sender_seconds * platform.gb
    outcome.peak_workers = 1
    return outcome
