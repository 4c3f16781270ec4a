"""The test tiers: what `make test` runs, and what it leaves to `make test-ci` (marker `ci`).

`make test` checks every property on every strategy, and meets each backend kind on each
code path that differs by backend. It leaves out parametrizations whose code another item of
`make test` runs on the same backend: this module marks them `ci` (as a test may mark itself
`ci` when it is too slow for `make test`), and `make test-ci` runs them after `make test`;
`make test-thorough` runs all of it with 10x the examples. docs/testing.md lists what moved,
from this table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

Params = Mapping[str, object]
CI = pytest.mark.ci

# Modules whose every test is marked `ci` and whose imports take seconds (aws_cdk starts a
# Node process): a run that leaves `ci` out does not import them.
CI_MODULES = frozenset({"test_cdk.py"})

# moto server is moto's DynamoDB, which a test of the three backends also meets in-process,
# over HTTP, which it also meets on dynalite. `make test` keeps it where each backend's own
# behaviour is the subject: the store's reads, the table and its items.
ALL_BACKENDS_IN = frozenset({"test_store.py", "test_layout.py", "test_tables.py"})


def on(backend: str, *, by: str = "strategy", **others: str) -> Callable[[Params], bool]:
    """Kept in `make test` on ``backend``; for the values of parameter ``by`` named in
    ``others``, on the backend given there instead."""

    def keep(params: Params) -> bool:
        value = params.get(by, params.get(f"{by}_env"))  # a fixture may carry the strategy
        return params.get("backend") == others.get(str(value), backend)

    return keep


# Test function -> which of its items `make test` runs; the rest are marked `ci`. The state
# machines run each strategy on one backend: every machine meets moto and dynalite, and every
# strategy meets moto in one machine and dynalite in the others (moto in-process is 2-4x
# slower: its scans and responses are Python in the test's own process).
QUICK: dict[str, Callable[[Params], bool]] = {
    "test_fanout_reaches_exactly_the_live_audience": on("dynalite", parallel_scan="moto"),
    "test_access_control_holds_on_every_strategy": on("dynalite", gsi_query="moto"),
    "test_history_resumes_exactly_what_is_retained": on("dynalite", full_scan="moto"),
    "test_the_promise_holds_under_faults": on("dynalite", sqs_batched="moto"),
    # The handlers' table code meets every backend in test_handlers.py.
    "test_hostile_events_are_answered_4xx_or_as_documented": on(
        "dynalite", by="name", default="moto", join_room="moto", ping="moto", send_message="moto"
    ),
    "test_hostile_sends_on_every_strategy": on("dynalite", gsi_query="moto", sqs_batched="moto"),
    "test_sqs_worker_never_raises_and_reports_unreadable_records": on("dynalite"),
    "test_sweep_ignores_its_event_and_deletes_only_expired_rows": on("dynalite"),
    "test_the_properties_catch_a_buggy_strategy": on("dynalite"),
}


# Tests of several seconds each (state machines, Hypothesis over a backend, builds): they run
# first, so that the two workers end together rather than one finishing a long test alone.
FIRST = frozenset(
    {
        *QUICK,
        "test_access_control_holds_with_principals_from_real_tokens",
        "test_hostile_publishes_raise_before_reading_or_reach_only_their_audience",
        "test_every_handler_imports_from_the_artifact_alone",
        "test_an_app_with_its_own_strategies_publishes",
    }
)


def skips_module(path: Path, markexpr: str) -> bool:
    """True if a run selecting ``markexpr`` need not import the test module at ``path``."""
    return path.name in CI_MODULES and "not ci" in markexpr


def _group(item: pytest.Item) -> tuple[str, str, str]:
    """An item's test and its parameters but the backend."""
    callspec = getattr(item, "callspec", None)
    params = {} if callspec is None else dict(callspec.params)
    params.pop("backend", None)
    name = getattr(item, "originalname", item.name)
    return str(item.path), name, repr(sorted((k, repr(v)) for k, v in params.items()))


def mark_tiers(items: list[pytest.Item]) -> None:
    """Mark `ci` every item `make test` leaves out (see the module's docstring); put the
    slow ones first."""
    items.sort(key=lambda item: getattr(item, "originalname", item.name) not in FIRST)
    backends_of: dict[tuple[str, str, str], set[object]] = {}
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "backend" in callspec.params:
            backends_of.setdefault(_group(item), set()).add(callspec.params["backend"])
    for item in items:
        name = getattr(item, "originalname", item.name)
        if _left_out(item, name, backends_of):
            item.add_marker(CI)


def _left_out(
    item: pytest.Item, name: str, backends_of: Mapping[tuple[str, str, str], set[object]]
) -> bool:
    callspec = getattr(item, "callspec", None)
    params: Params = {} if callspec is None else callspec.params
    if "backend" not in params:
        return False
    keep = QUICK.get(name)
    if keep is not None:
        return not keep(params)
    return (
        params["backend"] == "moto_server"
        and Path(str(item.path)).name not in ALL_BACKENDS_IN
        and {"moto", "dynalite"} <= backends_of[_group(item)]
    )
