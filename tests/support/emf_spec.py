"""A checker of CloudWatch Embedded Metric Format documents, written from the specification
(docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html)
and CloudWatch's limits on what it extracts, independently of ``fanout_core.emf``.

``check(line)`` returns the document or raises AssertionError naming the rule it breaks.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

# The root node is a JSON object with nothing before or after it; a log event is at most
# 256 KB (the specification's limit, CloudWatch Logs' event size).
MAX_EVENT_BYTES = 256 * 1024
MAX_METRIC_DEFINITIONS = 100  # per directive (MetricDirective.Metrics), and per document
MAX_DIMENSION_SET = 30  # DimensionSet: at most 30 dimension names
MAX_VALUES = 100  # a metric's value: a number, or an array of at most 100 numbers
NAMESPACE = re.compile(r"[A-Za-z0-9._#:/-]{1,255}")  # CloudWatch's namespace characters
UNITS = {
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
}


def _rule(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(f"not EMF: {message}")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _ascii_name(value: Any, most: int) -> bool:
    # CloudWatch's dimension names and values: ASCII, not blank, no control characters.
    return (
        isinstance(value, str)
        and 0 < len(value) <= most
        and value.isascii()
        and value.isprintable()
        and bool(value.strip())
    )


def check(line: str) -> dict[str, Any]:
    """The EMF document ``line`` holds; AssertionError on the first rule it breaks."""
    _rule(len(line.encode()) <= MAX_EVENT_BYTES, "over 256 KB")
    _rule(line == line.strip() and line.startswith("{"), "text around the JSON object")
    try:
        root = json.loads(line)
    except ValueError as error:
        raise AssertionError(f"not EMF: not JSON ({error})") from None
    _rule(isinstance(root, dict), "the root is not an object")
    meta = root.get("_aws")
    _rule(isinstance(meta, dict), "no _aws metadata object")
    _rule(set(meta) <= {"CloudWatchMetrics", "Timestamp", "LogGroupName"}, f"_aws has {set(meta)}")
    _rule(_number(meta.get("Timestamp")), "_aws.Timestamp is not a number")
    _rule(meta["Timestamp"] > 1e12, "_aws.Timestamp is not in milliseconds since the epoch")
    directives = meta.get("CloudWatchMetrics")
    _rule(isinstance(directives, list), "_aws.CloudWatchMetrics is not an array")
    definitions = 0
    for directive in directives:
        _rule(isinstance(directive, dict), "a MetricDirective is not an object")
        _rule(
            set(directive) == {"Namespace", "Dimensions", "Metrics"},
            f"a MetricDirective has members {sorted(directive)}",
        )
        namespace = directive["Namespace"]
        _rule(isinstance(namespace, str) and bool(NAMESPACE.fullmatch(namespace)), "Namespace")
        _rule(not namespace.startswith("AWS/"), "an AWS/ namespace")
        dimensions = directive["Dimensions"]
        _rule(isinstance(dimensions, list), "Dimensions is not an array")
        for dimension_set in dimensions:
            _rule(isinstance(dimension_set, list), "a DimensionSet is not an array")
            _rule(len(dimension_set) <= MAX_DIMENSION_SET, "a DimensionSet of more than 30")
            _rule(len(set(dimension_set)) == len(dimension_set), "a dimension twice in a set")
            for name in dimension_set:
                _rule(_ascii_name(name, 255) and not name.startswith(":"), f"dimension {name!r}")
                _rule(name in root, f"dimension {name} has no member at the root")
                _rule(_ascii_name(root[name], 1024), f"dimension {name}'s value {root[name]!r}")
        metrics = directive["Metrics"]
        _rule(isinstance(metrics, list), "Metrics is not an array")
        _rule(len(metrics) <= MAX_METRIC_DEFINITIONS, "more than 100 MetricDefinitions")
        definitions += len(metrics)
        names = []
        for definition in metrics:
            _rule(isinstance(definition, dict), "a MetricDefinition is not an object")
            _rule(
                set(definition) <= {"Name", "Unit", "StorageResolution"} and "Name" in definition,
                f"a MetricDefinition has members {sorted(definition)}",
            )
            name = definition["Name"]
            _rule(isinstance(name, str) and 0 < len(name) <= 255 and name.strip() != "", "Name")
            if "Unit" in definition:
                _rule(definition["Unit"] in UNITS, f"{name}'s unit {definition['Unit']!r}")
            if "StorageResolution" in definition:
                _rule(definition["StorageResolution"] in (1, 60), f"{name}'s StorageResolution")
            _rule(name in root, f"metric {name} has no value at the root")
            value = root[name]
            if isinstance(value, list):
                _rule(0 < len(value) <= MAX_VALUES, f"{name} has {len(value)} values")
                _rule(all(_number(v) for v in value), f"{name} has a value that is no number")
            else:
                _rule(_number(value), f"{name}'s value {value!r} is no number")
            _rule(not any(name in s for s in dimensions), f"{name} is a metric and a dimension")
            names.append(name)
        _rule(len(set(names)) == len(names), "a metric twice in one directive")
    _rule(definitions <= MAX_METRIC_DEFINITIONS, f"{definitions} metric definitions")
    document: dict[str, Any] = root
    return document


def metrics_of(document: dict[str, Any]) -> dict[str, Any]:
    """Every metric the document's directives name, with its value."""
    names = {
        definition["Name"]
        for directive in document["_aws"]["CloudWatchMetrics"]
        for definition in directive["Metrics"]
    }
    found: dict[str, Any] = {name: document[name] for name in names}
    return found
