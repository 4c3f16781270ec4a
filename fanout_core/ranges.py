"""Key ranges of one audience partition, so a big partition is read by several task chains.

A partition's index sort keys are ``CONN#<connection id>``. Once a read task has read the
first page of a partition and found more, the rest of it (keys after the page's last) is cut
into up to ``MAX_RANGES`` ranges of about equal key width, each read by its own chain of
tasks: a 1,000,000-member room is read by 16 chains of ~63 pages rather than one of 1,000.
The cuts interpolate between the page's last key and the partition's largest key, over the
characters the ids use, so they follow any id scheme that spreads over its range (API
Gateway's random base64 ids, or sequential ones). Each range includes its lower bound and
excludes its upper bound (the reader drops the one item equal to it); the last one is
open-ended, so a connection that joins during the read is still found. A partition holds one
row per connection (its sort key is the connection's), so an item dropped at one range's
upper bound is the next one's first.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass

from fanout_core import keys
from fanout_core.errors import InvalidConnectionIdError

MAX_RANGES = 16
_PLACES = 8  # characters after the common prefix that the cuts interpolate over
END = keys.CONNECTION_PREFIX + "~"  # above every sort key: "~" sorts after every id character


@dataclass(frozen=True)
class KeyRange:
    """Sort keys ``lower <= key < upper`` of one partition."""

    lower: str
    upper: str

    def holds(self, sort_key: str) -> bool:
        """True if ``sort_key`` is in the range (the reader's exclusive upper bound)."""
        return self.lower <= sort_key < self.upper


@dataclass(frozen=True)
class _Digits:
    """Strings after a common prefix as numbers, over the characters the ids use.

    Digit 0 is the end of a string (it sorts first); the others are the characters seen,
    in byte order (DynamoDB's). Interpolating over what the ids use keeps sequential ids
    ("...0999", "...1000") as even as random ones.
    """

    alphabet: str

    @property
    def base(self) -> int:
        return len(self.alphabet) + 1

    def value(self, suffix: str) -> int:
        value = 0
        for place in range(_PLACES):
            digit = self.alphabet.find(suffix[place]) + 1 if place < len(suffix) else 0
            value = value * self.base + digit
        return value

    def text(self, value: int) -> str:
        chars: list[str] = []
        for place in range(_PLACES - 1, -1, -1):
            digit = value // self.base**place % self.base
            if digit == 0:  # the string ends here; what follows cannot make it larger
                break
            chars.append(self.alphabet[digit - 1])
        return "".join(chars)


def _common_prefix(a: str, b: str) -> str:
    size = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        size += 1
    return a[:size]


def _id_of(sort_key: str) -> str | None:
    """The connection id of a sort key, or None if it is not one."""
    if not sort_key.startswith(keys.CONNECTION_PREFIX):
        return None
    try:
        return keys.validate_connection_id(sort_key[len(keys.CONNECTION_PREFIX) :])
    except InvalidConnectionIdError:
        return None


def is_bound(sort_key: str) -> bool:
    """True if ``sort_key`` may bound a range: a connection's sort key, or ``END``."""
    return sort_key == END or _id_of(sort_key) is not None


def split(
    after: str, last: str, *, seen: Iterable[str] = (), most: int = MAX_RANGES
) -> list[KeyRange]:
    """Ranges covering every sort key above ``after``: the rest of a partition.

    ``after`` is where the page read ended, ``seen`` the page's sort keys and ``last`` the
    partition's largest. The count follows the rest's width against the page's width (the
    pages left), up to ``most``; one range when no cut is worth a task.
    """
    page = [ident for ident in map(_id_of, seen) if ident is not None]
    after_id, last_id = _id_of(after), _id_of(last)
    if after_id is None or last_id is None or last <= after:
        return [KeyRange(after, END)]
    first_id = min([*page, after_id])
    prefix = _common_prefix(first_id, last_id)
    digits = _Digits(
        "".join(sorted({c for i in (*page, after_id, last_id) for c in i[len(prefix) :]}))
    )
    lo, mid, hi = (digits.value(i[len(prefix) :]) for i in (first_id, after_id, last_id))
    # The pages left: the rest's width over the page's (a page of one key has none: two).
    count = max(1, min(most, math.ceil((hi - mid) / (mid - lo)))) if mid > lo else min(most, 2)
    cuts: list[str] = [after]
    for part in range(1, count):
        cut = keys.CONNECTION_PREFIX + prefix + digits.text(mid + (hi - mid) * part // count)
        if cut > cuts[-1]:
            cuts.append(cut)
    cuts.append(END)
    return [KeyRange(lower, upper) for lower, upper in itertools.pairwise(cuts)]
