"""Why a handshake is refused: 401 (no valid token) or 403 (it could not be checked)."""

from __future__ import annotations


class Refused(Exception):
    """The handshake is refused with ``status``; ``reason`` is logged, never the token."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
