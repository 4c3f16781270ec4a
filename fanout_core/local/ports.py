"""Ports ``fanout serve`` listens on: a taken one is named before anything starts."""

from __future__ import annotations

import errno
import socket


class PortInUseError(OSError):
    """A port ``fanout serve`` was asked to listen on is taken (``what``: the option's name)."""

    def __init__(self, what: str, host: str, port: int) -> None:
        super().__init__(errno.EADDRINUSE, f"{host}:{port} is already in use")
        self.what = what
        self.host = host
        self.port = port


def claim_port(what: str, host: str, port: int) -> None:
    """Raise PortInUseError if something listens on ``host:port`` (0: any free, never taken).

    Bound as the servers bind (SO_REUSEADDR), so a previous run's closing sockets do not count.
    """
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise PortInUseError(what, host, port) from None
            raise
