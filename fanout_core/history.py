"""History, resume and idempotent publish, in the same table (opt-in).

With ``FANOUT_HISTORY_SECONDS`` set, every message to a room (or to everyone) takes the
next ``seq`` of its scope from an atomic counter and is stored, as sent, before any post:
a client that reconnects mid-fan-out still finds it. A resume reads a scope's retained
frames after ``since`` in ``seq`` order; it is complete exactly when every seq after
``since`` up to the latest is still retained (not trimmed by ``FANOUT_HISTORY_MAX``, not
expired, not lost by a publish that failed after taking its number). A counter that was
deleted and started again has a new ``epoch``: a ``since`` of the old one is not trusted.

An idempotency key is one conditional put: a second publish with the key within the dedup
window is a duplicate and fans out nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from pynamodb.exceptions import PutError

from fanout_core import keys
from fanout_core.config import FanoutConfig
from fanout_core.errors import condition_failed
from fanout_core.models import Models
from fanout_core.reads import Clock

# A counter outlives the frames it numbered by this much: an idle room starts over (with a
# new epoch) only long after its last frame expired.
COUNTER_GRACE_SECONDS = 86_400
# History items read per Query page: a backlog is posted while the next page is not read.
PAGE_ITEMS = 100


@dataclass(frozen=True)
class Position:
    """Where a scope's numbering stands: its latest ``seq`` (0: none yet) and its ``epoch``."""

    seq: int
    epoch: int  # when the counter started, epoch milliseconds (0: it has not)


@dataclass(frozen=True)
class Retained:
    """One retained frame of a scope, as it was first sent."""

    seq: int
    frame: str


class History:
    """A table's history partitions: counters, frames, idempotency keys."""

    def __init__(self, models: Models, config: FanoutConfig, clock: Clock) -> None:
        self.models = models
        self.config = config
        self.clock = clock

    @property
    def enabled(self) -> bool:
        """True when frames are numbered and kept (FANOUT_HISTORY_SECONDS > 0)."""
        return self.config.history_seconds > 0

    # -- idempotency keys --------------------------------------------------------------

    def claim(self, scope: str, key: str, message_id: str) -> str | None:
        """Record ``key`` for ``message_id``; if a live claim exists, the id it published."""
        now = int(self.clock())
        dedup = self.models.dedup
        row = dedup(
            keys.dedup_pk(scope, key),
            keys.DEDUP_SK,
            message_id=message_id,
            expires_at=now + self.config.dedup_window,
        )
        try:
            # One conditional put: new, or the previous claim's window is over.
            row.save(condition=dedup.pk.does_not_exist() | (dedup.expires_at <= now))
        except PutError as error:
            if not condition_failed(error):
                raise
            try:
                previous = dedup.get(keys.dedup_pk(scope, key), keys.DEDUP_SK, consistent_read=True)
            except dedup.DoesNotExist:  # released meanwhile: that publish failed
                return self.claim(scope, key, message_id)
            return previous.message_id
        return None

    def release(self, scope: str, key: str, message_id: str) -> None:
        """Forget the claim of a publish that failed, so that a retry can publish."""
        dedup = self.models.dedup
        row = dedup(keys.dedup_pk(scope, key), keys.DEDUP_SK)
        try:
            row.delete(condition=dedup.message_id == message_id)
        except Exception:  # best effort: the window ends it anyway
            return

    # -- numbering and keeping ---------------------------------------------------------

    def next_seq(self, scope: str) -> int:
        """The scope's next sequence number: one atomic ADD, never the same twice."""
        counter = self.models.counter
        row = counter(keys.counter_pk(scope), keys.COUNTER_SK)
        now = self.clock()
        expires_at = int(now) + self.config.history_seconds + COUNTER_GRACE_SECONDS
        row.update(
            actions=[
                counter.seq.add(1),
                counter.epoch.set(counter.epoch | int(now * 1000)),  # if_not_exists
                counter.item_type.set(counter),  # the discriminator: a scan tells its kind
                counter.expires_at.set(expires_at),
            ]
        )
        return int(row.seq)

    def keep(self, scope: str, seq: int, frame: bytes) -> None:
        """Store a frame as it is posted, until the history window ends."""
        self.models.history(
            keys.history_pk(scope),
            keys.history_sk(seq),
            seq=seq,
            frame=frame.decode(),
            expires_at=int(self.clock()) + self.config.history_seconds,
        ).save()

    # -- reading -----------------------------------------------------------------------

    def position(self, scope: str) -> Position:
        """Where the scope's numbering stands (its counter, read consistently)."""
        counter = self.models.counter
        try:
            row = counter.get(keys.counter_pk(scope), keys.COUNTER_SK, consistent_read=True)
        except counter.DoesNotExist:
            return Position(0, 0)
        return Position(int(row.seq), int(row.epoch or 0))

    def joined(self, scope: str) -> Position:
        """Where a member that joins now starts: the scope's position, its counter started
        (seq 0) if it had none, so that the epoch a member holds is the one its frames get.
        Read before the membership is written: every frame after it reaches the member,
        live or by a resume."""
        at = self.position(scope)
        if at.epoch:
            return at
        counter = self.models.counter
        row = counter(keys.counter_pk(scope), keys.COUNTER_SK)
        now = self.clock()
        # One write, racing publishes and joins alike: whoever comes first starts it.
        row.update(
            actions=[
                counter.seq.set(counter.seq | 0),
                counter.epoch.set(counter.epoch | int(now * 1000)),
                counter.item_type.set(counter),
                counter.expires_at.set(
                    int(now) + self.config.history_seconds + COUNTER_GRACE_SECONDS
                ),
            ]
        )
        return Position(int(row.seq), int(row.epoch or 0))

    def after(self, scope: str, since: int, latest: int) -> Iterator[Retained]:
        """The retained frames numbered since+1 .. latest, in order, page by page.

        Frames more than ``FANOUT_HISTORY_MAX`` behind the latest are trimmed: never read,
        deleted by their TTL (a delete per message would cost more than their storage).
        """
        history = self.models.history
        start = max(since, latest - self.config.history_max, 0)
        if start >= latest:
            return
        rows = history.query(
            keys.history_pk(scope),
            history.sk.between(keys.history_sk(start + 1), keys.history_sk(latest)),
            filter_condition=history.expires_at > int(self.clock()),
            consistent_read=True,
            page_size=PAGE_ITEMS,
        )
        for row in rows:
            yield Retained(int(row.seq), row.frame)
            if row.seq >= latest:
                return  # a page that ended exactly here would cost one more, empty, request
