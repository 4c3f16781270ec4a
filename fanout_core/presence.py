"""Presence: who is in a room, and (``FANOUT_PRESENCE_EVENTS``) who joins and leaves it.

``{"action": "presence", "room": R}`` is answered with frames ``{"event": "presence", "room":
R, "members": [...], "count": N, "part": i, "parts": n}``, each under 128 KB, every one with
the exact total ``count``. With events on, ``presence.join`` and ``presence.leave`` frames
(``data``: the connection id and principal) go to the room's live members when a connection
joins, leaves, disconnects, or is found gone on a 410. A connection is never posted its own
join (on ``$connect`` it could not receive it yet: API Gateway would answer 410). Events are
best effort: one that cannot be fanned out is logged and fails nothing else.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from fanout_core.audience import Audience, Target
from fanout_core.message import MAX_PAYLOAD_BYTES, Message, encode_json, new_message_id
from fanout_core.outgoing import outgoing
from fanout_core.reads import Member
from fanout_core.result import FanoutResult
from fanout_core.store import ConnectionStore, Departure

if TYPE_CHECKING:
    from fanout_core.strategy import FanoutStrategy

log = logging.getLogger(__name__)

PRESENCE = "presence"
JOIN = "presence.join"
LEAVE = "presence.leave"
# The bytes a presence frame has besides its members: id, event, room (up to 200), counts.
_ENVELOPE_BYTES = 512


def presence_frames(room: str, members: Sequence[Member]) -> list[bytes]:
    """The answer to a presence request: the members in frames under 128 KB, in order."""
    entries = [
        encode_json({"connection_id": m.connection_id, "principal": m.principal}) for m in members
    ]
    parts: list[list[str]] = [[]]
    size = 0
    for entry in entries:
        if parts[-1] and size + len(entry.encode()) + 1 > MAX_PAYLOAD_BYTES - _ENVELOPE_BYTES:
            parts.append([])
            size = 0
        parts[-1].append(entry)
        size += len(entry.encode()) + 1
    frames = []
    for number, part in enumerate(parts, start=1):
        head = encode_json({"id": new_message_id(), "event": PRESENCE, "room": room, "from": None})[
            :-1
        ]
        tail = f',"count":{len(members)},"part":{number},"parts":{len(parts)}}}'
        frames.append(f'{head},"members":[{",".join(part)}]{tail}'.encode())
    return frames


class Departures:
    """Connections a fan-out found gone (410): each deleted at once, its departure kept for
    an announcement when the invocation ends.

    The deliverer's 410 callback: it runs on a cleanup thread in the middle of a fan-out,
    where starting another fan-out (the announcement) would nest one in the other.
    """

    def __init__(
        self, store: ConnectionStore, *, announce: bool, connecting_seconds: int = 0
    ) -> None:
        self.store = store
        self.announce = announce
        self.connecting_seconds = connecting_seconds
        self._lock = threading.Lock()
        self._pending: list[Departure] = []

    def gone(self, connection_id: str) -> None:
        """Delete the connection and all its rows, unless it may still be connecting; keep
        what to announce."""
        # API Gateway answers 410 until $connect has answered, and $connect writes the rows
        # before it answers: a 410 says nothing of a connection that young.
        grace = self.connecting_seconds
        connected_by = self.store.clock() - grace if grace else None
        departure = self.store.remove(connection_id, connected_by=connected_by)
        if self.announce and departure.rooms:
            with self._lock:
                self._pending.append(departure)

    @property
    def pending(self) -> bool:
        """True while a departure waits to be announced."""
        return bool(self._pending)

    def take(self) -> Departure | None:
        """The next departure to announce, or None."""
        with self._lock:
            return self._pending.pop() if self._pending else None


class Presence:
    """Presence answers and events for one runtime: its store and strategy."""

    def __init__(self, store: ConnectionStore, strategy: FanoutStrategy, *, events: bool) -> None:
        self.store = store
        self.strategy = strategy
        self.events = events

    def answer(self, connection_id: str, endpoint: str, room: str) -> FanoutResult:
        """Post the room's live members to the asking connection."""
        members = [m for page in self.store.members(room) for m in page]
        result = FanoutResult(strategy=PRESENCE, room=room, message_id="", audience="caller")
        target = [Target(connection_id, endpoint)]
        for frame in presence_frames(room, members):
            result.posted_bytes += len(frame)
            self.strategy.deliverer.deliver_targets(target, frame, result)
        return result

    def joined(self, connection_id: str, principal: str | None, rooms: Iterable[str]) -> None:
        """Tell each room's other members that ``connection_id`` joined."""
        for room in rooms:
            self._announce(JOIN, room, connection_id, principal)

    def left(self, departure: Departure) -> None:
        """Tell the remaining members of each of its rooms that the connection left."""
        for room in departure.rooms:
            self._announce(LEAVE, room, departure.connection_id, departure.principal)

    def announce(self, departures: Departures) -> None:
        """Announce every departure waiting, including those the announcements find."""
        while (departure := departures.take()) is not None:
            self.left(departure)

    def _announce(self, event: str, room: str, connection_id: str, principal: str | None) -> None:
        if not self.events:
            return
        data = {"connection_id": connection_id, "principal": principal}
        audience = Audience(room=room, exclude=frozenset({connection_id}))
        try:
            self.strategy.fanout(
                outgoing(Message(None, room=room, event=event, data=data), audience)
            )
        except Exception:
            # Best effort: the join or leave it tells of is done; failing its handler now
            # would refuse a $connect whose rows are written, or retry a $disconnect.
            log.exception("could not announce %s of %s", event, connection_id)
