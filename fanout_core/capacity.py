"""DynamoDB's consumed capacity, asked for on every call and added to the invocation's
ReadUnits or WriteUnits: what DynamoDB charged, as it reports it, not a model's guess."""

from __future__ import annotations

import weakref
from typing import Any

from fanout_core import metrics

_READS = frozenset({"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"})
_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})
_instrumented: weakref.WeakSet[Any] = weakref.WeakSet()


def instrument(client: Any) -> None:
    """Ask ``client`` (botocore DynamoDB) for the capacity each call consumes, and add it
    to the running invocation's ReadUnits or WriteUnits; once per client."""
    if client in _instrumented:
        return
    events = client.meta.events
    events.register("before-parameter-build.dynamodb", _ask_capacity)
    events.register("after-call.dynamodb", _consumed)
    _instrumented.add(client)


def _ask_capacity(params: dict[str, Any], model: Any, **_: Any) -> None:
    # Free: DynamoDB reports what it charges anyway; asking only puts it in the answer.
    if model.name in _READS or model.name in _WRITES:
        params.setdefault("ReturnConsumedCapacity", "TOTAL")


def _consumed(parsed: dict[str, Any], model: Any, **_: Any) -> None:
    # A failed call (a condition that did not hold) reports nothing: it is not counted.
    invocation = metrics.current()
    if invocation is None or not isinstance(parsed, dict):
        return
    consumed = parsed.get("ConsumedCapacity")
    entries = consumed if isinstance(consumed, list) else [consumed]
    units = sum(
        float(entry.get("CapacityUnits") or 0) for entry in entries if isinstance(entry, dict)
    )
    if units:
        invocation.add("ReadUnits" if model.name in _READS else "WriteUnits", units)
