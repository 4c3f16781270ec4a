"""Delivery: the Deliverer, its retry policy, and the posters it posts through.

``posting`` is the contract (statuses, outcomes, the ``Poster`` protocols, ``BotoPoster``);
``http_poster`` the signed HTTP/1.1 poster; ``backoff`` the one retry policy.
"""

from fanout_core.delivery.backoff import Backoff
from fanout_core.delivery.deliverer import Deliverer, GoneCallback

__all__ = ["Backoff", "Deliverer", "GoneCallback"]
