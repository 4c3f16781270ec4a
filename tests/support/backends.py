"""The backends a test's table lives on: moto in-process, moto server and dynalite.

The servers start from ``fanout_core.local.backends`` (the benchmarks use them too). A
backend that cannot start fails the run; it never skips. The ``backend`` fixture
(tests/conftest.py) hands out one of ``BACKENDS``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from fanout_core.config import FanoutConfig
from fanout_core.local.backends import check_alive, dynalite, free_port, moto_server
from fanout_core.table import create_table
from tests.support.tables import TablePool

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
    """Where a test's table lives: ``endpoint`` None means moto in-process.

    With ``tables``, a test's tables come from a pool of tables reused test after test
    (tests/support/tables.py); without, each is new.
    """

    name: str
    endpoint: str | None
    tables: TablePool | None = field(default=None, compare=False, repr=False)

    def config(self, **overrides: object) -> FanoutConfig:
        """A config for an empty table of this backend's (a pooled one, or a new one)."""
        table = self.tables.take() if self.tables is not None else _new_name()
        return self._config(table, overrides)

    def fresh_config(self, **overrides: object) -> FanoutConfig:
        """A config for a table that does not exist yet, never a pooled one."""
        return self._config(_new_name(), overrides)

    def ensure_table(self, config: FanoutConfig) -> None:
        """Create the table of ``config``, unless it is a pooled table that exists."""
        if self.tables is not None and self.tables.has(config.table):
            return
        create_table(config)
        if self.tables is not None:
            self.tables.created(config.table)

    def owns(self, config: FanoutConfig) -> bool:
        """True if the table of ``config`` outlives the test and is not a pooled one: the
        test deletes it."""
        pooled = self.tables is not None and config.table.startswith(self.tables.prefix)
        return self.endpoint is not None and not pooled

    def _config(self, table: str, overrides: dict[str, object]) -> FanoutConfig:
        values: dict[str, object] = {"table": table, "dynamodb_endpoint": self.endpoint}
        values.update(overrides)
        return FanoutConfig(**values)  # type: ignore[arg-type]


def _new_name() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"
