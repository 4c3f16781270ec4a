"""What a fan-out reads and posts to: targets, and the pages they come in."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Target:
    """A connection a message is posted to."""

    connection_id: str
    endpoint: str


@dataclass(frozen=True, slots=True)
class Page:
    """One DynamoDB response page of an audience, already stripped of expired rows."""

    targets: tuple[Target, ...]
    scanned: int  # items DynamoDB read (ScannedCount) for this page, before the filter
    read_units: float | None  # ConsumedCapacity as the backend reported it


def targets_of(pages: Iterable[Page]) -> Iterator[Target]:
    """Every target of every page, in order."""
    for page in pages:
        yield from page.targets
