"""Powertools' Metrics beside the library's: docs/operate.md's example, run as written. Each
writes its own documents to stdout, both valid EMF; the library never touches Powertools'
metric set (and never imports Powertools)."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest

from fanout_core.local.management_api import LocalManagementApi
from tests.support import emf_spec
from tests.support.backends import Backend
from tests.support.clock import FakeClock
from tests.support.harness import make_chat

ROOT = Path(__file__).resolve().parent.parent
OPERATE = ROOT / "docs" / "operate.md"


def example() -> str:
    """docs/operate.md's Python block that uses Powertools."""
    [block] = [
        b
        for b in re.findall(r"^```python\n(.*?)^```", OPERATE.read_text(), re.M | re.S)
        if "aws_lambda_powertools" in b
    ]
    return str(block)


class Watched:
    """The example's Fanout, with Powertools' metric set read before and after each publish."""

    def __init__(self, fanout: Any, powertools: Any) -> None:
        self.fanout = fanout
        self.powertools = powertools
        self.untouched: list[bool] = []

    def publish(self, *args: Any, **kwargs: Any) -> Any:
        before = copy.deepcopy(self.powertools.metric_set)
        result = self.fanout.publish(*args, **kwargs)
        self.untouched.append(self.powertools.metric_set == before)
        return result


@pytest.mark.parametrize("backend", ["moto"], indirect=True)
def test_powertools_and_the_library_each_write_their_own_valid_document(
    backend: Backend,
    local_api: LocalManagementApi,
    clock: FakeClock,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "orders-fn")  # both on, as on Lambda
    chat = make_chat(backend, local_api, clock, "gsi_query")  # Fanout() finds this runtime
    for _ in range(2):
        chat.connect(["orders"])
    capfd.readouterr()

    namespace: dict[str, Any] = {}
    exec(compile(example(), str(OPERATE), "exec"), namespace)
    watched = namespace["fanout"] = Watched(namespace["fanout"], namespace["metrics"])
    namespace["handler"]({"id": 7}, None)
    namespace["handler"]({"id": 8}, None)

    documents = [emf_spec.check(line) for line in capfd.readouterr().out.splitlines()]
    spaces = [{d["Namespace"] for d in doc["_aws"]["CloudWatchMetrics"]} for doc in documents]
    assert spaces == [{"fanout"}, {"orders"}] * 2  # each publish's, then Powertools' flush
    for document in documents[1::2]:
        assert emf_spec.metrics_of(document) == {"OrdersPlaced": [1.0]}
        assert document["service"] == "checkout"
    for document in documents[0::2]:
        assert emf_spec.metrics_of(document)["Delivered"] == 2
        assert "OrdersPlaced" not in document
    assert watched.untouched == [True, True]
    assert not any(name.startswith("aws_lambda_powertools") for name in _imported_by_library())


def _imported_by_library() -> set[str]:
    """What fanout_core's modules import (read from their source)."""
    import ast

    names: set[str] = set()
    for path in (ROOT / "fanout_core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
    return names
