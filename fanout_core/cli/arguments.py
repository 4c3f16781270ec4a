"""What the ``fanout`` subcommands share to read their arguments."""

from __future__ import annotations

import argparse
from typing import Any


def options(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The parsed values of ``names``, as keyword arguments of the same names."""
    return {name: getattr(args, name) for name in names}


def positive_int(raw: str) -> int:
    """An argparse type: an integer of at least 1."""
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative(raw: str) -> float:
    """An argparse type: a number of at least 0."""
    value = float(raw)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value
