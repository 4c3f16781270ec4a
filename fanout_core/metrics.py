"""Per-invocation metrics: counted while an invocation runs, written once, when it ends.

An entry point (a handler, the SQS worker, ``Fanout.publish``) runs inside ``invocation``;
what the invocation does is added to it as it happens (``add``, ``track``, ``sample``, and
DynamoDB's consumed capacity through ``fanout_core.capacity``); ``flush``, called by ``finish()``,
turns it into CloudWatch Embedded Metric Format documents (``fanout_core.emf``) and writes
them to stdout, or hands them to the sink a local tool installed (``set_sink``). The
invocation lives in a context variable, so concurrent invocations of one process (the local
server runs several) never mix, and threads started for an invocation carry it
(``contextvars.copy_context``).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from fanout_core import emf

if TYPE_CHECKING:
    from fanout_core.config import FanoutConfig

# Every metric the library writes, and its unit.
UNITS: dict[str, str] = {
    "Delivered": "Count",
    "Gone": "Count",
    "Throttled": "Count",
    "Retried": "Count",
    "Failed": "Count",
    "AudienceSize": "Count",
    "FanoutTime": "Milliseconds",
    "PostLatency": "Milliseconds",
    "ReadUnits": "Count",
    "WriteUnits": "Count",
    "Denied": "Count",
    "RateLimited": "Count",
    "Duplicates": "Count",
    "HistoryFrames": "Count",
    "Connects": "Count",
    "Disconnects": "Count",
    "WorkerTasks": "Count",
    "Requeued": "Count",
    "ClientErrors": "Count",
    "Errors": "Count",
    "OpenConnections": "Count",
}
# Also written per Source (the handler or entry point): what tells one path from another.
BY_SOURCE = (
    "Delivered",
    "Gone",
    "Throttled",
    "Retried",
    "Failed",
    "Errors",
    "AudienceSize",
    "FanoutTime",
    "PostLatency",
)
DIMENSIONS = ("Service", "Strategy")
SOURCE_DIMENSION = "Source"
DEFAULT_NAMESPACE = "fanout"
DEFAULT_SERVICE = "fanout"
# Posts whose latency an invocation keeps: a uniform sample (reservoir), so that a fan-out to
# 100,000 writes one array of 100 values, not 1,000 documents.
LATENCY_SAMPLES = 100


class _Counted(Protocol):
    """What ``flush`` reads of a FanoutResult (duck-typed: results sit above this module)."""

    delivered: int
    gone: int
    failed: int
    retried: int
    throttled: int
    requeued: int
    duplicate: bool


class Reservoir:
    """A uniform sample of at most ``size`` values of a stream (Li's algorithm L): a value
    past the first ``size`` costs a count and a comparison; only a replacement draws."""

    __slots__ = ("_next", "_w", "seen", "size", "values")

    def __init__(self, size: int = LATENCY_SAMPLES) -> None:
        self.size = size
        self.values: list[float] = []
        self.seen = 0
        self._next = size
        self._w = 1.0

    def add(self, value: float) -> None:
        """Offer one value."""
        self.seen += 1
        if self.seen <= self.size:
            self.values.append(value)
            if self.seen == self.size:
                self._skip()
        elif self.seen == self._next:
            import random

            self.values[random.randrange(self.size)] = value
            self._skip()

    def _skip(self) -> None:
        import math
        import random

        self._w *= math.exp(math.log(random.random() or 1e-300) / self.size)
        gap = math.log(random.random() or 1e-300) / math.log1p(-self._w) if self._w < 1 else 0
        self._next += int(gap) + 1


class Invocation:
    """What one invocation did, added from any thread (counts under a lock)."""

    def __init__(
        self, source: str, *, request_id: str | None = None, connection_id: str | None = None
    ) -> None:
        self.source = source
        self.request_id = request_id
        self.connection_id = connection_id
        self.counts: dict[str, float] = {}
        self.values: dict[str, list[float]] = {}
        self.gauges: dict[str, float] = {}  # written even when 0
        self.results: list[_Counted] = []
        self.latency = Reservoir()  # appended to on the delivery loop's thread only
        self.holders = 0  # nested entries (a publish inside a handler): they do not flush
        self.flushed = False
        self._lock = threading.Lock()

    def add(self, name: str, amount: float = 1) -> None:
        """Add ``amount`` to the count ``name``."""
        with self._lock:
            self.counts[name] = self.counts.get(name, 0) + amount

    def value(self, name: str, value: float) -> None:
        """One more value of ``name`` (one per fan-out: its time, its audience)."""
        with self._lock:
            self.values.setdefault(name, []).append(value)

    def gauge(self, name: str, value: float) -> None:
        """Set the gauge ``name`` (OpenConnections): written whatever its value."""
        with self._lock:
            self.gauges[name] = value

    def track(self, result: _Counted) -> None:
        """Count ``result``'s posts when the invocation ends (it is still being filled)."""
        with self._lock:
            self.results.append(result)

    def metrics(self) -> dict[str, float | list[float]]:
        """Every metric the invocation did something for (zeros left out), by name."""
        with self._lock:
            counts = dict(self.counts)
            values = {name: list(found) for name, found in self.values.items()}
            gauges = dict(self.gauges)
            results = list(self.results)
        for result in results:
            for name, amount in (
                ("Delivered", result.delivered),
                ("Gone", result.gone),
                ("Failed", result.failed),
                ("Retried", result.retried),
                ("Throttled", result.throttled),
                ("Requeued", result.requeued),
                ("Duplicates", int(result.duplicate)),
            ):
                counts[name] = counts.get(name, 0) + amount
        found: dict[str, float | list[float]] = {n: v for n, v in counts.items() if v}
        found.update({n: v for n, v in values.items() if v})
        found.update(gauges)
        if self.latency.values:
            found["PostLatency"] = [round(v, 3) for v in self.latency.values]
        return found


@dataclass(frozen=True)
class Settings:
    """Where and under which names documents go: from FanoutConfig's metrics fields."""

    enabled: bool
    namespace: str = DEFAULT_NAMESPACE
    service: str = DEFAULT_SERVICE
    strategy: str = "gsi_query"

    @classmethod
    def of(cls, config: FanoutConfig) -> Settings:
        """The settings ``config`` gives (metrics on by default inside Lambda only)."""
        function = os.environ.get("AWS_LAMBDA_FUNCTION_NAME") or None
        mode = config.metrics or ("emf" if function else "off")
        return cls(
            enabled=mode == "emf",
            namespace=config.metrics_namespace,
            service=config.service or function or DEFAULT_SERVICE,
            strategy=config.strategy,
        )


# Receives an invocation's documents (each one JSON line) instead of stdout.
Sink = Callable[[Sequence[str], Invocation], None]

_current: ContextVar[Invocation | None] = ContextVar("fanout_invocation", default=None)
# What log lines say of the running invocation, metrics on or off.
_fields: ContextVar[dict[str, str] | None] = ContextVar("fanout_log_fields", default=None)
_sink: Sink | None = None


def current() -> Invocation | None:
    """The invocation running in this context, if metrics are being collected."""
    return _current.get()


def log_fields() -> dict[str, str]:
    """The running invocation's route, request id and connection id, for a log line."""
    return _fields.get() or {}


def add(name: str, amount: float = 1) -> None:
    """Add to the running invocation's count ``name`` (nothing when none is collected)."""
    invocation = _current.get()
    if invocation is not None and amount:
        invocation.add(name, amount)


def gauge(name: str, value: float) -> None:
    """Set a gauge of the running invocation (nothing when none is collected)."""
    invocation = _current.get()
    if invocation is not None:
        invocation.gauge(name, value)


def track(result: _Counted) -> None:
    """Count a FanoutResult in the running invocation when it ends."""
    invocation = _current.get()
    if invocation is not None:
        invocation.track(result)


def fanout_ended(audience: int | None, seconds: float) -> None:
    """One fan-out's audience (None: handed on unread) and time."""
    invocation = _current.get()
    if invocation is not None:
        invocation.value("FanoutTime", round(seconds * 1000, 3))
        if audience is not None:
            invocation.value("AudienceSize", audience)


def latency_sample() -> Reservoir | None:
    """Where the running invocation keeps post latencies (ms), or None."""
    invocation = _current.get()
    return None if invocation is None else invocation.latency


def set_sink(sink: Sink | None) -> Sink | None:
    """Send every invocation's documents to ``sink`` (None: stdout, when metrics are on);
    with a sink, invocations are collected whatever FANOUT_METRICS says. Returns the last."""
    global _sink
    previous, _sink = _sink, sink
    return previous


@contextlib.contextmanager
def invocation(
    source: str,
    config: FanoutConfig | None = None,
    *,
    request_id: str | None = None,
    connection_id: str | None = None,
) -> Iterator[Invocation | None]:
    """Collect what runs inside as one invocation of ``source``; an entry inside another
    (a publish from a handler) joins it and leaves the writing to it."""
    fields_token = None
    if _fields.get() is None:
        fields = {"route": source}
        if request_id:
            fields["request_id"] = request_id
        if connection_id:
            fields["connection_id"] = connection_id
        fields_token = _fields.set(fields)
    try:
        outer = _current.get()
        if outer is not None:
            outer.holders += 1
            try:
                yield outer
            finally:
                outer.holders -= 1
            return
        if _sink is None and not _settings(config).enabled:
            yield None
            return
        collected = Invocation(source, request_id=request_id, connection_id=connection_id)
        token = _current.set(collected)
        try:
            yield collected
        finally:
            _current.reset(token)
    finally:
        if fields_token is not None:
            _fields.reset(fields_token)


def flush(config: FanoutConfig | None = None) -> None:
    """Write the running invocation's documents, once; nothing for a nested entry."""
    collected = _current.get()
    if collected is None or collected.holders or collected.flushed:
        return
    collected.flushed = True
    settings = _settings(config)
    lines = [
        json.dumps(document, separators=(",", ":"), allow_nan=False)
        for document in documents(collected, settings)
    ]
    sink = _sink
    if sink is not None:
        sink(lines, collected)
    elif settings.enabled:
        # One write, so lines of concurrent invocations never interleave.
        sys.stdout.write("".join(line + "\n" for line in lines))
        sys.stdout.flush()


def documents(collected: Invocation, settings: Settings) -> list[dict[str, Any]]:
    """The invocation's EMF documents: usually one; more only past EMF's limits."""
    metrics = collected.metrics()
    properties: dict[str, Any] = {
        "Service": settings.service,
        "Strategy": settings.strategy,
        SOURCE_DIMENSION: collected.source,
    }
    if collected.request_id:
        properties["RequestId"] = collected.request_id
    if collected.connection_id:
        properties["ConnectionId"] = collected.connection_id
    directives = [
        emf.Directive([list(DIMENSIONS)], list(metrics)),
        emf.Directive(
            [[*DIMENSIONS, SOURCE_DIMENSION]], [name for name in metrics if name in BY_SOURCE]
        ),
    ]
    return emf.documents(
        settings.namespace,
        directives,
        {name: (UNITS.get(name, "None"), value) for name, value in metrics.items()},
        properties,
        timestamp_ms=int(time.time() * 1000),
    )


def _settings(config: FanoutConfig | None) -> Settings:
    from fanout_core.config import FanoutConfig
    from fanout_core.errors import ConfigError

    if config is None:
        try:
            config = FanoutConfig.from_env()
        except ConfigError:  # answered as misconfigured; the metrics say so with defaults
            config = FanoutConfig()
    return Settings.of(config)
