"""What the simulator assumes about the platform: every figure named, with where it comes from.

``Platform()`` is AWS (us-east-1, the account's defaults, ``template.yaml``'s settings);
``benchmarks/simulate_check.py`` builds one for this machine from the benchmark's own
measurements. Figures marked "assumed" are not published by AWS: pass your own.
"""

from __future__ import annotations

from dataclasses import dataclass

from fanout_core.config import DEFAULT_CONCURRENCY, DEFAULT_MAX_ATTEMPTS
from fanout_core.cost import LAMBDA_BATCH_SIZE, Workload
from fanout_core.queue import MAX_ENTRIES_PER_CALL, TARGETS_PER_MESSAGE
from fanout_core.worker import DEFAULT_INLINE, DEFAULT_PAGE_ITEMS, MAX_ATTEMPTS

_WORKLOAD = Workload(connections=1, room_size=1, messages_per_day=1)

# -- API Gateway (developer guide, "Amazon API Gateway quotas"; shared/AWS_LIMITS.md) --
APIGW_ACCOUNT_RATE = 10_000.0  # requests a second per account and region, posts included
APIGW_ACCOUNT_BURST = 5_000.0  # the account token bucket's size
INTEGRATION_TIMEOUT_SECONDS = 29.0  # a route's integration; the client gets an error past it

# -- Lambda (developer guide: quotas; "Configuring Lambda function memory") --
LAMBDA_MAX_SECONDS = 900.0  # 15 minutes per invocation
LAMBDA_REGION_CONCURRENCY = 1_000  # concurrent executions per region, default quota
LAMBDA_MB_PER_VCPU = 1_769  # "at 1,769 MB, a function has the equivalent of one vCPU"
TEMPLATE_MEMORY_MB = _WORKLOAD.lambda_memory_mb  # template.yaml's MemorySize

# -- Lambda's SQS event source (developer guide, "Configuring scaling behavior for SQS event
# source mappings", services-sqs-scaling.html) --
SQS_INITIAL_BATCHES = 5  # "starts processing five batches at a time"
SQS_SCALE_PER_MINUTE = 300  # "up to 300 more instances per minute"
SQS_MAX_BATCHES = 1_000  # "the maximum number of batches ... simultaneously"


@dataclass(frozen=True)
class Platform:
    """The platform a fan-out runs on; the defaults are AWS's and the library's own."""

    # API Gateway's account token bucket; None: no limit (the local Management API).
    account_rate: float | None = APIGW_ACCOUNT_RATE
    account_burst: float = APIGW_ACCOUNT_BURST
    integration_timeout: float = INTEGRATION_TIMEOUT_SECONDS
    lambda_max_seconds: float = LAMBDA_MAX_SECONDS  # the sending function's Timeout
    # Posting: one PostToConnection round trip (assumed, as fanout cost's), the CPU it costs
    # at one vCPU (docs/benchmarks.md, "Delivery throughput"), posts in flight per invocation
    # (FANOUT_CONCURRENCY), one invocation's cap (FANOUT_MAX_POSTS_PER_SECOND; None: none).
    post_latency: float = _WORKLOAD.post_latency_seconds
    post_cpu: float = _WORKLOAD.post_cpu_seconds
    concurrency: int = DEFAULT_CONCURRENCY
    max_posts_per_second: float | None = None
    adaptive: bool = True  # FANOUT_ADAPTIVE_RATE: a 429 halves the window (AIMD)
    post_attempts: int = DEFAULT_MAX_ATTEMPTS  # FANOUT_MAX_ATTEMPTS
    # Reading: one Query/Scan page round trip (assumed, as fanout cost's); the service's time
    # per MB a page reads (assumed: ~50 ms for a full 1 MB page); decoding a returned item
    # at one vCPU (derived from benchmarks/results/results.json by simulate_check, rounded).
    read_request: float = _WORKLOAD.read_request_seconds
    read_seconds_per_mb: float = 0.050
    decode_cpu_per_item: float = 0.000035
    read_parallelism: int | None = None  # pages the backend serves at once; None: any
    sqs_request: float = _WORKLOAD.sqs_request_seconds  # a SendMessageBatch round trip (assumed)
    # Lambda: memory (vCPU share), concurrency, the SQS event source's scaling.
    memory_mb: int = TEMPLATE_MEMORY_MB
    vcpu: float | None = None  # None: memory_mb / 1,769, at most 6 (Lambda's largest)
    region_concurrency: int = LAMBDA_REGION_CONCURRENCY
    sqs_initial_batches: int = SQS_INITIAL_BATCHES
    sqs_scale_per_minute: int = SQS_SCALE_PER_MINUTE
    sqs_max_batches: int = SQS_MAX_BATCHES  # or the mapping's MaximumConcurrency (2..1,000)
    batch_size: int = LAMBDA_BATCH_SIZE  # template.yaml's BatchSize for sqs_worker
    invoke_overhead: float = 0.025  # from a message's arrival to its handler's start (assumed)
    cold_start: float = 0.300  # a new worker: runtime start and imports (assumed; measured
    # imports on this machine: ~0.27 s, benchmarks/results)
    warm_workers: int = SQS_INITIAL_BATCHES  # containers a queue in use keeps warm (assumed)
    fanout_overhead: float = 0.0  # fixed cost of one fan-out call (framing, loop handoff)
    # The fan-out tree (fanout_core.worker and fanout_core.queue).
    page_items: int = DEFAULT_PAGE_ITEMS
    inline: int = DEFAULT_INLINE
    targets_per_message: int = TARGETS_PER_MESSAGE
    entries_per_call: int = MAX_ENTRIES_PER_CALL
    worker_attempts: int = MAX_ATTEMPTS
    segments: int = 4  # parallel_scan's FANOUT_SEGMENTS
    concurrent_shards: bool = True  # gsi_query reads its 16 everyone shards at once

    @property
    def cpu_share(self) -> float:
        """vCPUs an invocation has."""
        if self.vcpu is not None:
            return self.vcpu
        return min(6.0, self.memory_mb / LAMBDA_MB_PER_VCPU)

    @property
    def gb(self) -> float:
        """Memory in GB, as Lambda bills it."""
        return self.memory_mb / 1024
