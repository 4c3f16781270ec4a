"""Publishing: a message checked and framed once where it enters (``outgoing``), then
deduplicated, numbered and kept (history on), and handed to the strategy; and resuming a
room's history.
"""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING

from fanout_core import keys, metrics
from fanout_core.audience import Audience, Target
from fanout_core.message import encode_json, new_message_id
from fanout_core.outgoing import Outgoing
from fanout_core.result import FanoutResult

if TYPE_CHECKING:
    from fanout_core.delivery import Deliverer
    from fanout_core.history import History
    from fanout_core.strategy import FanoutStrategy


def publish(
    message: Outgoing,
    strategy: FanoutStrategy,
    history: History,
    *,
    key: str | None = None,
    sender_scope: str = "",
) -> FanoutResult:
    """Fan ``message`` out through ``strategy``: claim its idempotency key, number and keep
    it (history on, to a room or everyone), then post. Departures found on the way are
    announced when the invocation ends (``Runtime.finish``).

    A key already claimed within the window fans out nothing: the result says
    ``duplicate`` and names the first message. A publish that raises releases its key,
    so that a retry publishes (and may reach some members twice, with a new id).
    """
    claim = None
    if key is not None:
        claim = (dedup_scope(message.audience) + sender_scope, key)
        first = history.claim(*claim, message.id)
        if first is not None:
            label = message.audience.label
            return FanoutResult(strategy.name, message.room, first, label, duplicate=True)
    try:
        if history.enabled and message.numbered:
            scope = keys.scope_of(message.room)
            frame = message.frame.numbered(history.next_seq(scope))
            assert frame.seq is not None
            # Kept before any post: a client that resumes meanwhile finds it.
            history.keep(scope, frame.seq, frame.payload)
            message = Outgoing(frame, message.audience)
        return strategy.fanout(message)
    except BaseException:
        if claim is not None:
            history.release(*claim, message.id)
        raise


# How long a resume waits before it looks once more for a frame its first read missed.
HOLE_WAIT_SECONDS = 0.1


def resume(
    history: History,
    deliverer: Deliverer,
    connection_id: str,
    endpoint: str,
    room: str | None,
    *,
    since: int | None = None,
    last: int | None = None,
    epoch: int | None = None,
) -> FanoutResult:
    """Post a scope's retained frames after ``since`` (or its ``last`` N) to one
    connection, in seq order, one at a time, then ``history.end``.

    ``complete`` in ``history.end`` is false exactly when a frame after ``since`` is not
    retained (trimmed, expired, or lost by a publish that failed after taking its
    number), or when ``epoch`` is not the counter's: the client then knows it missed
    something. A frame missing from the first read (its publish may be between taking its
    number and keeping its frame) is looked for once more, ``HOLE_WAIT_SECONDS`` later, and
    posted after the others: clients order by seq. A post that fails ends the resume there,
    with no ``history.end``.
    """
    scope = keys.scope_of(room)
    at = history.position(scope)
    if since is None:
        since = max(0, at.seq - (last or 0))
    elif epoch is not None and epoch != at.epoch:
        since = -1  # another numbering: all of this one is new, and something was missed
    result = FanoutResult("history", room, "", "caller")
    target = [Target(connection_id, endpoint)]
    low = max(since, 0)
    posted: set[int] = set()

    def post(after: int, wanted: set[int] | None = None) -> bool:
        for retained in history.after(scope, after, at.seq):  # page by page
            if wanted is not None and retained.seq not in wanted:
                continue
            frame = retained.frame.encode()
            result.posted_bytes += len(frame)
            deliverer.deliver_targets(target, frame, result)
            if result.gone or result.failed:  # gone, or a hole in what it received
                return False
            posted.add(retained.seq)
            metrics.add("HistoryFrames")
        return True

    if not post(low):
        return result
    trimmed = low < at.seq - history.config.history_max
    if 0 <= since <= at.seq and not trimmed and len(posted) < at.seq - low:
        # A publish keeps its frame one write after taking its number: a hole may be a
        # frame on its way. Looked for once more, then it counts as missing.
        holes = set(range(low + 1, at.seq + 1)) - posted  # at most FANOUT_HISTORY_MAX
        time.sleep(HOLE_WAIT_SECONDS)
        if not post(min(holes) - 1, holes):
            return result
    complete = 0 <= since <= at.seq and len(posted) == at.seq - low
    end: dict[str, object] = {"id": new_message_id(), "event": "history.end", "room": room}
    end["from"] = None
    end.update({"seq": at.seq, "epoch": at.epoch, "complete": complete})
    frame = encode_json(end).encode()
    result.posted_bytes += len(frame)
    deliverer.deliver_targets(target, frame, result)
    return result


def dedup_scope(audience: Audience) -> str:
    """What an idempotency key is unique within: the audience it published to."""
    if audience.user is not None:
        return keys.user_index_pk(audience.user)
    if audience.connections is not None:
        chosen = ",".join(sorted(set(audience.connections))).encode()
        return keys.CONNECTION_PREFIX + hashlib.sha256(chosen).hexdigest()[:32]
    return keys.scope_of(audience.room)
