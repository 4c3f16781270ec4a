"""Rate limits: a token bucket per connection, and (optional) one per principal.

``FANOUT_RATE_LIMIT=COUNT/SECONDS`` gives each connection a bucket of COUNT tokens, refilled
at COUNT per SECONDS: a burst of COUNT, then one every SECONDS / COUNT. Every action a client
can repeat takes a token (docs/access.md lists what each costs); an answer posted to the
caller (``history``, ``presence``) is charged afterwards for what it posted, past its first
token, and may leave the bucket in debt. ``FANOUT_USER_RATE_LIMIT`` gives each principal a
bucket too, shared by its connections, taken after the connection's.

A bucket is one row (sk ``RATE``: in the connection's own partition, or a principal's
``RATE#USER#<principal>``) holding GCRA's theoretical arrival time (TAT), which only moves
forward. A token is one conditional UpdateItem: "idle" (TAT behind now: it starts over at
now) or "in a burst" (TAT ahead: one more interval, while within the burst). Which one
applies is guessed from the last TAT this container saw for the bucket; because TAT never
moves back, a guess of "in a burst" is never wrong, and a wrong "idle" costs one more
update. A refused token adds one GetItem, for ``retry_after``. The row expires once the
bucket is full again: an idle connection leaves none behind.
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
# Buckets whose last TAT a container remembers: a few hundred KB at most.
SEEN_MAX = 10_000


class RateLimiter:
    """Takes a token, or raises RateLimitedError with when to try again.

    ``per_user``: the buckets are principals' (``take(principal)``), not connections'.
    """

    def __init__(
        self, models: Models, limit: RateLimit, clock: Clock, *, per_user: bool = False
    ) -> None:
        self.models = models
        self.limit = limit
        self.clock = clock
        self.per_user = per_user
        self.interval = max(1, round(limit.seconds * MICROS / limit.count))
        self.burst = self.interval * (limit.count - 1)  # how far ahead of now TAT may run
        self._seen: OrderedDict[str, int] = OrderedDict()  # bucket key -> a TAT it had
        self._lock = threading.Lock()

    def _row(self, key: str) -> RateItem:
        pk = keys.user_rate_pk(key) if self.per_user else keys.connection_pk(key)
        return self.models.rate(pk, keys.RATE_SK)

    def take(self, key: str) -> None:
        """One token of ``key``'s bucket (a connection id, or a principal ``per_user``);
        RateLimitedError if the bucket is empty. Changes nothing then."""
        row = self._row(key)
        for _ in range(3):  # a race with another request of the same bucket: look again
            now = int(self.clock() * MICROS)
            seen = self._last_seen(key)
            # TAT only moves forward: if it was ahead of now, it still is, and "idle" would fail.
            maybe_idle = seen is None or seen <= now
            if (maybe_idle and self._idle(row, key, now)) or self._in_burst(row, key, now):
                self._remember(key, int(row.tat))
                return
            tat = self._tat(row)
            if tat is None:  # deleted meanwhile (a disconnect, a sweep): start over
                self._forget(key)
                continue
            self._remember(key, tat)
            if tat > now + self.burst:
                raise RateLimitedError(key, (tat - self.burst - now) / MICROS)
        raise RateLimitedError(key, self.interval / MICROS)

    def _idle(self, row: RateItem, key: str, now: int) -> bool:
        """Idle, or slower than the rate: the bucket starts over at now."""
        model = self.models.rate
        return self._update(
            row,
            [model.tat.set(now + self.interval), *self._common(key, self._full_at(now))],
            model.tat.does_not_exist() | (model.tat <= now),
        )

    def _in_burst(self, row: RateItem, key: str, now: int) -> bool:
        """In a burst: one more interval, while within the burst."""
        model = self.models.rate
        return self._update(
            row,
            [model.tat.set(model.tat + self.interval), *self._common(key, self._full_at(now))],
            (model.tat > now) & (model.tat <= now + self.burst),
        )

    def charge(self, key: str, tokens: int) -> None:
        """Take ``tokens`` more after the fact, whatever the bucket holds: it may go into
        debt, which later takes wait out. Never refused."""
        if tokens <= 0:
            return
        model = self.models.rate
        row = self._row(key)
        cost = tokens * self.interval
        for _ in range(3):  # a race with another request of the same bucket: look again
            now = int(self.clock() * MICROS)
            idle = [model.tat.set(now + cost), *self._common(key, math.ceil((now + cost) / MICROS))]
            # Busy: the row expires at or after its TAT; both move by the cost.
            busy: list[object] = [
                model.tat.set(model.tat + cost),
                model.expires_at.set(model.expires_at + math.ceil(cost / MICROS)),
            ]
            if self._update(row, idle, model.tat.does_not_exist() | (model.tat <= now)) or (
                self._update(row, busy, model.tat > now)
            ):
                self._remember(key, int(row.tat))
                return
        # Three races lost: the charge is dropped, never worth failing what was posted.

    def _full_at(self, now: int) -> int:
        """When a bucket that just gave a token is full again at the latest, in seconds."""
        return math.ceil((now + self.burst + self.interval) / MICROS)

    def _common(self, key: str, expires_at: int) -> list[object]:
        model = self.models.rate
        actions: list[object] = [
            model.item_type.set(model),  # the discriminator: a scan tells the row's kind
            model.expires_at.set(expires_at),
        ]
        if not self.per_user:
            actions.append(model.connection_id.set(key))
        return actions

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

    def _last_seen(self, key: str) -> int | None:
        with self._lock:
            return self._seen.get(key)

    def _forget(self, key: str) -> None:
        with self._lock:
            self._seen.pop(key, None)

    def _remember(self, key: str, tat: int) -> None:
        with self._lock:
            self._seen[key] = tat
            self._seen.move_to_end(key)
            while len(self._seen) > SEEN_MAX:
                self._seen.popitem(last=False)
