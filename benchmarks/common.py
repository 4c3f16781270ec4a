"""What the benchmark modules share: connection ids, rooms, the callback URL."""

from __future__ import annotations

ENDPOINT = "https://abcd123456.execute-api.us-east-1.amazonaws.com/prod"


def bench_id(i: int) -> str:
    """The i-th connection id: 16 characters, like API Gateway's."""
    return f"bench{i:010d}="


def room_name(room_size: int, index: int) -> str:
    """The index-th room of a table whose rooms have ``room_size`` members."""
    return f"k{room_size}-{index:06d}"
