"""The backends a test's table lives on: moto in-process, moto server and dynalite.

The servers start from ``fanout_core.local.backends`` (the benchmarks use them too). A
backend that cannot start fails the run; it never skips. The ``backend`` fixture
(tests/conftest.py) hands out one of ``BACKENDS``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from fanout_core.config import FanoutConfig
from fanout_core.local.backends import check_alive, dynalite, free_port, moto_server

__all__ = [
    "BACKENDS",
    "SERVER_BACKENDS",
    "STRATEGIES",
    "Backend",
    "check_alive",
    "dynalite",
    "free_port",
    "moto_server",
]

BACKENDS = ["moto", "moto_server", "dynalite"]
SERVER_BACKENDS = {"moto_server", "dynalite"}  # a process of their own: the `server` marker
STRATEGIES = ["full_scan", "gsi_query", "parallel_scan", "sqs_batched"]


@dataclass(frozen=True)
class Backend:
    """Where a test's table lives: ``endpoint`` None means moto in-process."""

    name: str
    endpoint: str | None

    def config(self, **overrides: object) -> FanoutConfig:
        """A config for a new, uniquely named table on this backend."""
        values: dict[str, object] = {
            "table": f"t-{uuid.uuid4().hex[:12]}",
            "dynamodb_endpoint": self.endpoint,
        }
        values.update(overrides)
        return FanoutConfig(**values)  # type: ignore[arg-type]
