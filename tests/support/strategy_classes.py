"""The built-in strategy classes, as the registry loads them.

They run as ``fanout_core.strategies.*``: the wheel's name, and the editable install's (an
import finder maps it to the repository's ``strategies/`` folder). mypy cannot follow that
finder, so it checks the same files as the ``strategies`` package; importing that name at run
time would load each class a second time, and the registry's would not be these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from strategies.full_scan import FullScan
    from strategies.gsi_query import GsiQuery
    from strategies.parallel_scan import ParallelScan
    from strategies.sqs_batched import SqsBatched
else:
    from fanout_core.strategies.full_scan import FullScan
    from fanout_core.strategies.gsi_query import GsiQuery
    from fanout_core.strategies.parallel_scan import ParallelScan
    from fanout_core.strategies.sqs_batched import SqsBatched

__all__ = ["FullScan", "GsiQuery", "ParallelScan", "SqsBatched"]
