"""Key ranges of a partition: they cover the rest of it exactly, and about evenly."""

from __future__ import annotations

import base64
import itertools
import random

from hypothesis import assume, given
from hypothesis import strategies as st

from fanout_core.keys import CONNECTION_PREFIX
from fanout_core.ranges import END, MAX_RANGES, KeyRange, split

ids = st.text(
    alphabet="+/=_-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    min_size=1,
    max_size=20,
)


def sort_keys(connection_ids: list[str]) -> list[str]:
    return sorted({CONNECTION_PREFIX + cid for cid in connection_ids})


def first_page_and_ranges(keys: list[str], page: int) -> tuple[list[str], list[KeyRange]]:
    """What a worker does: read ``page`` keys, then split the rest."""
    read = keys[:page]
    return read, split(read[-1], keys[-1], seen=read)


@given(st.lists(ids, min_size=2, max_size=200), st.integers(1, 50), st.lists(ids, max_size=20))
def test_the_ranges_cover_every_key_after_the_page_exactly_once(
    connection_ids: list[str], page: int, joined_later: list[str]
) -> None:
    keys = sort_keys(connection_ids)
    assume(len(keys) >= 2)
    page = min(page, len(keys) - 1)  # there is more than the page: that is when it splits
    read, ranges = first_page_and_ranges(keys, page)
    after = read[-1]
    assert 1 <= len(ranges) <= MAX_RANGES
    assert ranges[0].lower == after
    assert ranges[-1].upper == END
    assert all(a.upper == b.lower for a, b in itertools.pairwise(ranges))
    assert all(r.lower < r.upper for r in ranges)
    # Keys written after the split (a member that joined meanwhile) are covered too.
    for key in sort_keys(keys + [k[len(CONNECTION_PREFIX) :] for k in keys] + joined_later):
        holding = [i for i, r in enumerate(ranges) if r.holds(key)]
        if key < after:
            assert holding == [], key
        elif key == after:
            assert holding == [0]  # and the first range's task starts after it
        else:
            assert len(holding) == 1, (key, holding, ranges)


def spread(keys: list[str], page: int) -> list[int]:
    read, ranges = first_page_and_ranges(keys, page)
    rest = [k for k in keys if k > read[-1]]
    return [sum(1 for k in rest if r.holds(k)) for r in ranges]


def test_a_big_partition_splits_into_even_ranges_whatever_its_ids_look_like() -> None:
    rng = random.Random(7)
    gateway = [base64.b64encode(rng.randbytes(12)).decode() for _ in range(40_000)]
    sequential = [f"bench{i:010d}=" for i in range(40_000)]
    for connection_ids in (gateway, sequential):
        counts = spread(sort_keys(connection_ids), 1000)
        assert len(counts) == MAX_RANGES, counts
        mean = sum(counts) / len(counts)
        # The longest chain sets the time to read it all: no range is far above the mean.
        assert max(counts) <= 1.5 * mean, counts


def test_a_partition_of_few_pages_splits_into_as_many() -> None:
    keys = sort_keys([f"bench{i:010d}=" for i in range(3_500)])
    assert len(spread(keys, 1000)) in (3, 4)  # 2,500 keys left: about three pages' width
    assert len(spread(keys[:1_400], 1000)) == 1  # the rest is under a page: one task
    # A page of one key has no width to measure the rest by: two ranges.
    assert len(spread(keys, 1)) == 2


def test_keys_that_are_not_connection_ids_are_not_cut() -> None:
    assert split("CONN#a", "ROOM#x") == [KeyRange("CONN#a", END)]
    assert split("CONN#b", "CONN#a", seen=["CONN#a"]) == [KeyRange("CONN#b", END)]
