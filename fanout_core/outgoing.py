"""A message ready to fan out: checked and framed once, where it enters.

A message enters through a handler (``sendMessage``), ``Fanout.publish`` or a presence
announcement. There its audience is validated and its frame encoded, once, into an
``Outgoing``; everything after takes that (a worker gets the frame from its task's body).
"""

from __future__ import annotations

from dataclasses import dataclass

from fanout_core.audience import Audience
from fanout_core.message import Frame, Message
from fanout_core.result import FanoutResult


@dataclass(frozen=True)
class Outgoing:
    """A message ready to fan out: its audience validated, its frame encoded."""

    frame: Frame
    audience: Audience

    @property
    def id(self) -> str:
        """The message id every recipient gets."""
        return self.frame.id

    @property
    def room(self) -> str | None:
        """The room it goes to (None: a user, chosen connections, or everyone)."""
        return self.audience.room

    @property
    def numbered(self) -> bool:
        """True when history numbers it: it goes to a room or to everyone."""
        return self.audience.user is None and self.audience.connections is None

    def result(self, strategy: str) -> FanoutResult:
        """An empty result of its fan-out by ``strategy``."""
        return FanoutResult(strategy, self.room, self.id, self.audience.label, seq=self.frame.seq)


def outgoing(
    message: Message, audience: Audience | None = None, *, history: bool = False
) -> Outgoing:
    """``message`` to ``audience`` (default: its room, or everyone), framed once.

    PayloadTooLargeError over 128 KB (with ``history``, with room for its seq when it is
    numbered), TypeError if its data is not JSON: before any read, write or post.
    """
    audience = audience or Audience(room=message.room)
    numbered = history and audience.user is None and audience.connections is None
    return Outgoing(message.encode(numbered=numbered), audience)
