"""CloudWatch Embedded Metric Format: documents within the specification's limits.

A document is one JSON object: ``_aws`` (``Timestamp`` in ms, ``CloudWatchMetrics``: a list
of directives, each a ``Namespace``, ``Dimensions`` as sets of names and ``Metrics`` as
``{Name, Unit}``), and at its top level every dimension's value (a string) and every
metric's value (a number, or an array of numbers for percentiles). Past EMF's limits (100
metrics, 100 values per array, 30 dimensions per set) the values go into several documents.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MAX_METRICS = 100  # metric definitions in one document
MAX_VALUES = 100  # values in one metric's array
MAX_DIMENSIONS = 30  # names in one dimension set

Value = float | int | Sequence[float]


@dataclass(frozen=True)
class Directive:
    """Which of a document's metrics CloudWatch extracts, under which dimension sets."""

    dimensions: list[list[str]]
    metrics: list[str]


def documents(
    namespace: str,
    directives: Sequence[Directive],
    metrics: Mapping[str, tuple[str, Value]],
    properties: Mapping[str, Any],
    *,
    timestamp_ms: int,
) -> list[dict[str, Any]]:
    """The documents that carry ``metrics`` (name -> (unit, value)) under ``directives``;
    ``properties`` (the dimensions' values, and anything else) are in every one."""
    for directive in directives:
        for dimension_set in directive.dimensions:
            if len(dimension_set) > MAX_DIMENSIONS:
                raise ValueError(f"a dimension set has {len(dimension_set)} names (most: 30)")
            missing = [n for n in dimension_set if not isinstance(properties.get(n), str)]
            if missing:
                raise ValueError(f"dimensions without a string value: {missing}")
    # Each metric's values in chunks of MAX_VALUES: document i carries chunk i.
    chunks: dict[str, list[Value]] = {}
    for name, (_, value) in metrics.items():
        if isinstance(value, int | float):
            chunks[name] = [value]
        else:
            values = list(value)
            chunks[name] = [
                values[start : start + MAX_VALUES] for start in range(0, len(values), MAX_VALUES)
            ] or [[]]
    rounds = max((len(c) for c in chunks.values()), default=1)
    made: list[dict[str, Any]] = []
    for index in range(rounds):
        present = [name for name, c in chunks.items() if index < len(c)]
        for group in _groups(directives, present):
            made.append(_document(namespace, group, metrics, chunks, index, properties))
        if not present and index == 0 and directives:  # nothing measured: still one document
            empty = [Directive(directives[0].dimensions, [])]
            made.append(_document(namespace, empty, metrics, chunks, index, properties))
    for document in made:
        document["_aws"]["Timestamp"] = timestamp_ms
    return made


def _groups(directives: Sequence[Directive], present: list[str]) -> list[list[Directive]]:
    """The directives restricted to ``present`` metrics, cut so that no document holds
    more than MAX_METRICS definitions."""
    groups: list[list[Directive]] = [[]]
    room = MAX_METRICS
    for directive in directives:
        names = [name for name in directive.metrics if name in present]
        while names:
            if room == 0:
                groups.append([])
                room = MAX_METRICS
            taken, names = names[:room], names[room:]
            groups[-1].append(Directive(directive.dimensions, taken))
            room -= len(taken)
    return [group for group in groups if group]


def _document(
    namespace: str,
    group: list[Directive],
    metrics: Mapping[str, tuple[str, Value]],
    chunks: Mapping[str, list[Value]],
    index: int,
    properties: Mapping[str, Any],
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "_aws": {
            "Timestamp": 0,
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": [list(s) for s in directive.dimensions],
                    "Metrics": [
                        {"Name": name, "Unit": metrics[name][0]} for name in directive.metrics
                    ],
                }
                for directive in group
            ],
        },
        **properties,
    }
    for directive in group:
        for name in directive.metrics:
            document[name] = chunks[name][index]
    return document
