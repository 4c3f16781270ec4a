"""The ``fanout`` WebSocket subprotocol: what a ``$connect`` client offered, and the answer.

A browser signs in by offering two subprotocols, ``fanout`` and its token
(``Sec-WebSocket-Protocol: fanout, <token>``); it closes a socket whose handshake answer
names none of them, so ``$connect`` answers ``fanout`` whenever it was offered.
"""

from __future__ import annotations

from collections.abc import Mapping

PROTOCOL = "fanout"
HEADER = "Sec-WebSocket-Protocol"


def header_values(event: object, name: str) -> list[str]:
    """Every value of the request header ``name`` (any case) in an API Gateway event."""
    if not isinstance(event, Mapping):
        return []
    wanted = name.lower()
    multi = event.get("multiValueHeaders")
    if isinstance(multi, Mapping):
        found = [
            value
            for key, values in multi.items()
            if isinstance(key, str) and key.lower() == wanted and isinstance(values, list)
            for value in values
            if isinstance(value, str)
        ]
        if found:
            return found
    single = event.get("headers")
    if not isinstance(single, Mapping):
        return []
    return [
        value
        for key, value in single.items()
        if isinstance(key, str) and key.lower() == wanted and isinstance(value, str)
    ]


def offered(event: object) -> list[str]:
    """The subprotocols the client offered, in its order (empty entries dropped)."""
    return [
        part.strip()
        for value in header_values(event, HEADER)
        for part in value.split(",")
        if part.strip()
    ]


def answer_headers(event: object) -> dict[str, str]:
    """``{"Sec-WebSocket-Protocol": "fanout"}`` if the client offered ``fanout``, else ``{}``."""
    return {HEADER: PROTOCOL} if PROTOCOL in offered(event) else {}
