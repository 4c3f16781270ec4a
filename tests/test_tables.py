"""The tests' pooled tables: a table comes back to the next test empty, or the test fails."""

from __future__ import annotations

import pytest

from fanout_core.store import ConnectionStore
from tests.support.backends import Backend
from tests.support.clock import FakeClock
from tests.support.tables import TablePool, items

ENDPOINT = "https://abcd123.execute-api.us-east-1.amazonaws.com/prod"


def test_a_pooled_table_comes_back_empty_and_a_row_left_in_it_is_caught(
    backend: Backend,
) -> None:
    """Two tests in a row, as the ``backend`` fixture runs them, on a pool of their own."""
    pool = TablePool(f"check-{backend.name}", backend.endpoint)
    first = Backend(backend.name, backend.endpoint, pool)
    config = first.config()
    first.ensure_table(config)
    ConnectionStore(config, clock=FakeClock()).connect("A", ENDPOINT, rooms=["r"])
    assert len(items(pool.client, config.table)) == 2
    pool.wipe()  # the fixture, after the first test

    second = Backend(backend.name, backend.endpoint, pool).config()
    assert (second.table, items(pool.client, second.table)) == (config.table, [])
    assert pool.has(second.table)  # the next test creates nothing

    ConnectionStore(second, clock=FakeClock()).connect("B", ENDPOINT)
    pool.handed.clear()  # as if the wipe after that test had not run
    with pytest.raises(AssertionError, match="holds a row of an earlier test"):
        pool.take()
    pool.wipe()
