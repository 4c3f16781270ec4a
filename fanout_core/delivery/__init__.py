"""Delivery: the Deliverer, its retry policy, and the posters it posts through.

``posting`` is the contract (statuses, outcomes, the ``Poster`` protocols, ``BotoPoster``);
``http_poster`` the signed HTTP/1.1 poster; ``backoff`` the one retry policy.
"""

import typing as _typing

from fanout_core._lazy import lazy_exports as _lazy_exports

if _typing.TYPE_CHECKING:
    from fanout_core.delivery.backoff import Backoff
    from fanout_core.delivery.deliverer import Deliverer, GoneCallback

__all__ = ["Backoff", "Deliverer", "GoneCallback"]

# Imported on first use: a poster module imports this package first, and the Deliverer
# above it must not come along.
__getattr__, __dir__ = _lazy_exports(
    __name__,
    {
        "Backoff": "fanout_core.delivery.backoff",
        "Deliverer": "fanout_core.delivery.deliverer",
        "GoneCallback": "fanout_core.delivery.deliverer",
    },
)
