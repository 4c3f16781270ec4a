"""A per-connection rate limit: a token bucket in the connection's own partition.

``FANOUT_RATE_LIMIT=COUNT/SECONDS`` gives each connection a bucket of COUNT sends (a
``history`` request takes a token too: it posts as much), refilled at COUNT per SECONDS: a
burst of COUNT, then one every SECONDS / COUNT. The bucket is one row (sk ``RATE``) holding
GCRA's theoretical arrival time (TAT), which only moves forward. A send is one conditional
UpdateItem: "idle" (TAT behind now: it starts over at now) or "in a burst" (TAT ahead: one
more interval, while within the burst). Which one applies is guessed from the last TAT this
container saw for the connection; because TAT never moves back, a guess of "in a burst" is
never wrong, and a wrong "idle" costs one more update. A refused send adds one GetItem, for
``retry_after``. The row expires with the window: an idle connection leaves none behind.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict

from pynamodb.exceptions import UpdateError

from fanout_core import keys
from fanout_core.config import RateLimit
from fanout_core.errors import RateLimitedError, condition_failed
from fanout_core.models import Models, RateItem
from fanout_core.reads import Clock

MICROS = 1_000_000
# Connections whose last TAT a container remembers: a few hundred KB at most.
SEEN_MAX = 10_000


class RateLimiter:
    """Takes a token for a send, or raises RateLimitedError with when to try again."""

    def __init__(self, models: Models, limit: RateLimit, clock: Clock) -> None:
        self.models = models
        self.limit = limit
        self.clock = clock
        self.interval = max(1, round(limit.seconds * MICROS / limit.count))
        self.burst = self.interval * (limit.count - 1)  # how far ahead of now TAT may run
        self._seen: OrderedDict[str, int] = OrderedDict()  # connection id -> a TAT it had
        self._lock = threading.Lock()

    def take(self, connection_id: str) -> None:
        """One send's token; RateLimitedError if the bucket is empty. Changes nothing then."""
        model = self.models.rate
        row = model(keys.connection_pk(connection_id), keys.RATE_SK)
        for _ in range(3):  # a race with another send of the same connection: look again
            now = int(self.clock() * MICROS)
            seen = self._last_seen(connection_id)
            # TAT only moves forward: if it was ahead of now, it still is, and "idle" would fail.
            maybe_idle = seen is None or seen <= now
            if (maybe_idle and self._idle(row, connection_id, now)) or self._in_burst(
                row, connection_id, now
            ):
                self._remember(connection_id, int(row.tat))
                return
            tat = self._tat(row)
            if tat is None:  # deleted meanwhile (a disconnect, a sweep): start over
                self._forget(connection_id)
                continue
            self._remember(connection_id, tat)
            if tat > now + self.burst:
                raise RateLimitedError(connection_id, (tat - self.burst - now) / MICROS)
        raise RateLimitedError(connection_id, self.interval / MICROS)

    def _idle(self, row: RateItem, connection_id: str, now: int) -> bool:
        """Idle, or slower than the rate: the bucket starts over at now."""
        model = self.models.rate
        return self._update(
            row,
            [model.tat.set(now + self.interval), *self._common(connection_id, now)],
            model.tat.does_not_exist() | (model.tat <= now),
        )

    def _in_burst(self, row: RateItem, connection_id: str, now: int) -> bool:
        """In a burst: one more interval, while within the burst."""
        model = self.models.rate
        return self._update(
            row,
            [model.tat.set(model.tat + self.interval), *self._common(connection_id, now)],
            (model.tat > now) & (model.tat <= now + self.burst),
        )

    def _common(self, connection_id: str, now: int) -> list[object]:
        model = self.models.rate
        return [
            model.item_type.set(model),  # the discriminator: a scan tells the row's kind
            model.connection_id.set(connection_id),
            model.expires_at.set(math.ceil((now + self.burst + self.interval) / MICROS)),
        ]

    @staticmethod
    def _update(row: RateItem, actions: list[object], condition: object) -> bool:
        try:
            # PynamoDB asks for ALL_NEW: afterwards ``row.tat`` is the bucket's new TAT.
            row.update(actions=actions, condition=condition)  # type: ignore[arg-type]
        except UpdateError as error:
            if condition_failed(error):
                return False
            raise
        return True

    def _tat(self, row: RateItem) -> int | None:
        try:
            row.refresh(consistent_read=True)
        except self.models.rate.DoesNotExist:
            return None
        return int(row.tat)

    def _last_seen(self, connection_id: str) -> int | None:
        with self._lock:
            return self._seen.get(connection_id)

    def _forget(self, connection_id: str) -> None:
        with self._lock:
            self._seen.pop(connection_id, None)

    def _remember(self, connection_id: str, tat: int) -> None:
        with self._lock:
            self._seen[connection_id] = tat
            self._seen.move_to_end(connection_id)
            while len(self._seen) > SEEN_MAX:
                self._seen.popitem(last=False)
