"""What a simulated fan-out reports: times, latency quantiles, counts and dollars."""

from __future__ import annotations

from dataclasses import dataclass, field

from fanout_core.cost import (
    APIGW_MESSAGE_PER_MILLION,
    DYNAMODB_READ_PER_MILLION_RRU,
    LAMBDA_GB_SECOND,
    LAMBDA_REQUEST_PER_MILLION,
    SQS_REQUEST_PER_MILLION,
)


class Deliveries:
    """When posts landed: spans of posts spread evenly over (start, end), in time order."""

    def __init__(self) -> None:
        self.spans: list[tuple[float, float, float]] = []
        self.total = 0.0

    def add(self, start: float, end: float, posts: float) -> None:
        """``posts`` landed evenly between ``start`` and ``end`` (after every earlier span)."""
        if posts <= 0:
            return
        if self.spans and self.spans[-1][1] == start and self.spans[-1][0] < start:
            # Merge a step into the span before it when the rate is the same.
            first, last, before = self.spans[-1]
            if abs(before / (last - first) - posts / (end - start)) < 1e-9 * (posts + 1):
                self.spans[-1] = (first, end, before + posts)
                self.total += posts
                return
        self.spans.append((start, end, posts))
        self.total += posts

    def quantile(self, q: float) -> float:
        """The time by which a fraction ``q`` of the posts had landed."""
        if not self.spans:
            return 0.0
        wanted = q * self.total
        seen = 0.0
        for start, end, posts in self.spans:
            if seen + posts >= wanted:
                return start + (end - start) * (wanted - seen) / posts
            seen += posts
        return self.spans[-1][1]

    @property
    def last(self) -> float:
        """When the last post landed."""
        return self.spans[-1][1] if self.spans else 0.0

    @property
    def first(self) -> float:
        """When the first post landed."""
        return self.spans[0][0] if self.spans else 0.0


@dataclass
class Outcome:
    """One simulated fan-out of one message."""

    strategy: str
    connections: int
    audience: int  # targets
    audience_label: str  # "room of 1,000" or "everyone"
    seconds: float = 0.0  # from the send to the last delivery
    first_delivery: float = 0.0
    p50: float = 0.0  # delivery latency quantiles, from the send
    p99: float = 0.0
    sender_seconds: float = 0.0  # the sending invocation's run time
    delivered: float = 0.0
    invocations: int = 1
    dynamodb_requests: int = 0
    read_units: float = 0.0
    sqs_requests: int = 0
    gb_seconds: float = 0.0
    throttled: float = 0.0  # posts answered 429 (the model's estimate)
    requeued: float = 0.0  # posts that used up their attempts and went back on the queue
    peak_workers: int = 0
    # The sending invocation outlives API Gateway's integration timeout (the sender gets an
    # error while delivery goes on) / its function's timeout, at most Lambda's 15 minutes
    # (delivery stops: ``delivered`` is short).
    over_integration_timeout: bool = False
    over_lambda_limit: bool = False
    notes: list[str] = field(default_factory=list)

    def dollars(self) -> dict[str, float]:
        """Dollars for this message, by service (``fanout_core.cost``'s prices)."""
        return {
            "dynamodb": self.read_units * DYNAMODB_READ_PER_MILLION_RRU / 1e6,
            "apigateway": (1 + self.delivered + self.requeued) * APIGW_MESSAGE_PER_MILLION / 1e6,
            "lambda": self.invocations * LAMBDA_REQUEST_PER_MILLION / 1e6
            + self.gb_seconds * LAMBDA_GB_SECOND,
            "sqs": self.sqs_requests * SQS_REQUEST_PER_MILLION / 1e6,
        }

    @property
    def per_message(self) -> float:
        """Dollars for this message."""
        return sum(self.dollars().values())

    def record(self, deliveries: Deliveries) -> None:
        """Fill in the times from ``deliveries``."""
        self.delivered = deliveries.total
        self.first_delivery = deliveries.first
        self.seconds = deliveries.last
        self.p50 = deliveries.quantile(0.50)
        self.p99 = deliveries.quantile(0.99)
