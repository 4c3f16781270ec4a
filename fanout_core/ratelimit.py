"""A per-connection rate limit: a token bucket in the connection's own partition.

``FANOUT_RATE_LIMIT=COUNT/SECONDS`` gives each connection a bucket of COUNT sends, refilled
at COUNT per SECONDS: a burst of COUNT, then one every SECONDS / COUNT. The bucket is one
row (sk ``RATE``) holding GCRA's theoretical arrival time: one conditional UpdateItem per
send while sends come slower than the rate, a second during a burst, and a GetItem when
one is refused (for ``retry_after``). The row expires with the window: an idle connection
leaves none behind.
"""

from __future__ import annotations

import math

from pynamodb.exceptions import UpdateError

from fanout_core import keys
from fanout_core.config import RateLimit
from fanout_core.errors import RateLimitedError
from fanout_core.models import Models, RateItem
from fanout_core.reads import Clock

_CONDITION_FAILED = "ConditionalCheckFailedException"
MICROS = 1_000_000


class RateLimiter:
    """Takes a token for a send, or raises RateLimitedError with when to try again."""

    def __init__(self, models: Models, limit: RateLimit, clock: Clock) -> None:
        self.models = models
        self.limit = limit
        self.clock = clock

    def take(self, connection_id: str) -> None:
        """One send's token; RateLimitedError if the bucket is empty. Changes nothing then."""
        model = self.models.rate
        row = model(keys.connection_pk(connection_id), keys.RATE_SK)
        interval = max(1, round(self.limit.seconds * MICROS / self.limit.count))
        burst = interval * (self.limit.count - 1)  # how far ahead of now the bucket may run
        for _ in range(3):  # a race with another send of the same connection: look again
            now = int(self.clock() * MICROS)
            expires_at = math.ceil((now + burst + interval) / MICROS)
            common = [
                model.item_type.set(model),  # the discriminator: a scan tells the row's kind
                model.connection_id.set(connection_id),
                model.expires_at.set(expires_at),
            ]
            # Idle, or slower than the rate: the bucket starts over at now.
            if self._update(
                row,
                [model.tat.set(now + interval), *common],
                model.tat.does_not_exist() | (model.tat <= now),
            ):
                return
            # In a burst: one more interval, while within the burst.
            if self._update(
                row,
                [model.tat.set(model.tat + interval), *common],
                (model.tat > now) & (model.tat <= now + burst),
            ):
                return
            tat = self._tat(row)
            if tat is not None and tat > now + burst:
                raise RateLimitedError(connection_id, (tat - burst - now) / MICROS)
        raise RateLimitedError(connection_id, interval / MICROS)

    @staticmethod
    def _update(row: RateItem, actions: list[object], condition: object) -> bool:
        try:
            row.update(actions=actions, condition=condition)  # type: ignore[arg-type]
        except UpdateError as error:
            if error.cause_response_code == _CONDITION_FAILED:
                return False
            raise
        return True

    def _tat(self, row: RateItem) -> int | None:
        try:
            row.refresh(consistent_read=True)
        except self.models.rate.DoesNotExist:
            return None
        return int(row.tat)
