"""The frame every recipient gets: JSON with ``id``, ``from``, ``room`` and ``body``."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field

from fanout_core.errors import PayloadTooLargeError

# API Gateway's WebSocket message limit, which applies to @connections posts too.
MAX_PAYLOAD_BYTES = 128 * 1024


def new_message_id() -> str:
    """A random message id: what a client uses to drop a duplicate after a redelivery."""
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Message:
    """One message from ``sender`` to ``room`` (None: everyone)."""

    sender: str
    text: str
    room: str | None = None
    id: str = field(default_factory=new_message_id)

    def frame(self) -> bytes:
        """The bytes posted to each recipient; raises PayloadTooLargeError over 128 KB."""
        data = json.dumps(
            {"id": self.id, "from": self.sender, "room": self.room, "body": self.text},
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        if len(data) > MAX_PAYLOAD_BYTES:
            raise PayloadTooLargeError(len(data), MAX_PAYLOAD_BYTES)
        return data
