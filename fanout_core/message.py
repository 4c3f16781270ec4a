"""The envelope every recipient gets: ``id``, ``event``, ``room``, ``from``, and ``data``;
``seq`` too when the room keeps a history.

A text message carries ``body`` instead of ``data``, as the first clients (``{from, body}``)
expect. ``fanout_core/schema/protocol.json`` describes frames and client requests.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from fanout_core.errors import InvalidEventError, PayloadTooLargeError
from fanout_core.keys import MAX_SEQ

# API Gateway's WebSocket message limit, which applies to @connections posts too.
MAX_PAYLOAD_BYTES = 128 * 1024
DEFAULT_EVENT = "message"
EVENT_NAME_MAX = 64
_EVENT_NAME = re.compile(r"[A-Za-z0-9_.:-]+")
# The library's own frames (presence lists, history ends): nobody may send one by that name.
RESERVED_EVENT_PREFIXES = ("presence", "history", "fanout")


def new_message_id() -> str:
    """A random message id: what a client uses to drop a duplicate after a redelivery."""
    return uuid.uuid4().hex


def validate_event(event: object) -> str:
    """Return ``event`` if a client or a backend may send it, else raise InvalidEventError."""
    if not isinstance(event, str):
        raise InvalidEventError(repr(event), "must be a string")
    if not event or len(event) > EVENT_NAME_MAX or not _EVENT_NAME.fullmatch(event):
        raise InvalidEventError(
            event, f"1-{EVENT_NAME_MAX} characters of A-Z a-z 0-9 _ . : - are allowed"
        )
    if event.split(".")[0].split(":")[0] in RESERVED_EVENT_PREFIXES:
        raise InvalidEventError(event, f"{', '.join(RESERVED_EVENT_PREFIXES)} are the library's")
    return event


def encode_json(value: Any) -> str:
    """``value`` as compact JSON; TypeError if it is not JSON (NaN, a cycle, an object)."""
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError as error:  # NaN and infinities, circular references
        raise TypeError(f"not JSON-serialisable: {error}") from None


@dataclass(frozen=True, slots=True)
class Frame:
    """A message's frame, encoded once: what is posted, and where a ``seq`` goes into it.

    History numbers a frame after it is encoded (the number is taken just before the first
    post), so the bytes are kept as the part before ``seq`` and the part after it: numbering
    is one concatenation, never a second encoding of the data.
    """

    id: str
    head: bytes  # {"id":...,"event":...,"room":...,"from":...
    tail: bytes  # ,"body":...} or ,"data":...}
    seq: int | None = None
    payload: bytes = b""  # the bytes posted: head, the seq if any, tail

    def __post_init__(self) -> None:
        if not self.payload:
            seq = b"" if self.seq is None else b',"seq":%d' % self.seq
            object.__setattr__(self, "payload", self.head + seq + self.tail)

    def numbered(self, seq: int) -> Frame:
        """The same frame carrying ``seq``."""
        return Frame(self.id, self.head, self.tail, seq)

    def check_size(self, *, numbered: bool = False) -> Frame:
        """Itself; PayloadTooLargeError if it is over 128 KB (``numbered``: with any seq)."""
        size = len(self.payload)
        if numbered and self.seq is None:
            size += len(b',"seq":%d' % MAX_SEQ)
        if size > MAX_PAYLOAD_BYTES:
            raise PayloadTooLargeError(size, MAX_PAYLOAD_BYTES)
        return self


@dataclass(frozen=True)
class Message:
    """One message from ``sender`` (None: the backend) to ``room`` (None: no room).

    With ``text`` the frame carries ``body``; otherwise it carries ``data``, any JSON value.
    """

    sender: str | None
    text: str | None = None
    room: str | None = None
    id: str = field(default_factory=new_message_id)
    event: str = DEFAULT_EVENT
    data: Any = None
    seq: int | None = None  # its number in its room's history, when history is on

    def envelope(self) -> dict[str, Any]:
        """The frame as a JSON object."""
        frame: dict[str, Any] = {
            "id": self.id,
            "event": self.event,
            "room": self.room,
            "from": self.sender,
        }
        if self.seq is not None:
            frame["seq"] = self.seq
        if self.text is not None:
            frame["body"] = self.text
        else:
            frame["data"] = self.data
        return frame

    def encode(self, *, numbered: bool = False) -> Frame:
        """The frame, encoded once; PayloadTooLargeError over 128 KB (``numbered``: with
        room for any seq), TypeError if ``data`` is not JSON."""
        head = {"id": self.id, "event": self.event, "room": self.room, "from": self.sender}
        tail = {"body": self.text} if self.text is not None else {"data": self.data}
        try:
            head_bytes = encode_json(head)[:-1].encode()
            tail_bytes = b"," + encode_json(tail)[1:].encode()
        except UnicodeEncodeError:  # a lone surrogate ("\ud800") in a string
            raise TypeError("not JSON-serialisable: a string is not valid Unicode") from None
        frame = Frame(self.id, head_bytes, tail_bytes, self.seq)
        return frame.check_size(numbered=numbered)

    def frame(self) -> bytes:
        """The bytes posted to each recipient; PayloadTooLargeError over 128 KB, TypeError
        if ``data`` is not JSON."""
        return self.encode().payload
