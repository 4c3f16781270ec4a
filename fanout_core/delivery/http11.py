"""HTTP/1.1 on asyncio streams: keep-alive connections to one origin, and answers read whole.

The answer reader knows lengths, chunks, EOF and interim 1xx answers; private asyncio uses are
in ``_private``.
"""

from __future__ import annotations

import contextlib
import ssl
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fanout_core import _private

if TYPE_CHECKING:
    # asyncio is imported where it is used: it costs cold start, and only delivery needs it.
    import asyncio

MAX_HEAD_BYTES = 64 * 1024
# A keep-alive connection idle longer than this is closed, not reused: NAT gateways and
# load balancers drop idle flows silently (after 350 s on a NAT gateway), and a thawed
# Lambda container finds its connections as old as the pause.
MAX_IDLE_SECONDS = 60.0


class StaleConnection(Exception):
    """A reused keep-alive connection was closed before any byte of the answer came back."""


@dataclass(slots=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    keep_alive: bool


@dataclass(slots=True)
class Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    reused: bool = False
    idle_since: float = 0.0

    def usable(self) -> bool:
        # Bytes nobody asked for (a 408 before the server hangs up) would be read as the
        # next post's answer: such a connection is thrown away, as urllib3 does.
        unread = _private.unread_bytes(self.reader)
        return not (self.writer.is_closing() or self.reader.at_eof() or unread)


class Pool:
    """Keep-alive connections to one origin, for the event loop that opened them."""

    def __init__(self, host: str, port: int, ssl_context: ssl.SSLContext | None, size: int):
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.size = size
        self.idle: list[Connection] = []

    async def acquire(self, timeout: float, *, new: bool = False) -> Connection:
        import asyncio

        if new:  # a reused connection just failed: the other idle ones are as old
            self.discard_idle()
        now = time.monotonic()
        while self.idle:
            connection = self.idle.pop()
            if connection.usable() and now - connection.idle_since < MAX_IDLE_SECONDS:
                connection.reused = True
                return connection
            connection.writer.close()
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(
                self.host,
                self.port,
                ssl=self.ssl_context,
                server_hostname=self.host if self.ssl_context else None,
                limit=MAX_HEAD_BYTES,
            )
        return Connection(reader, writer)

    def release(self, connection: Connection, *, keep: bool) -> None:
        if keep and len(self.idle) < self.size and connection.usable():
            connection.idle_since = time.monotonic()
            self.idle.append(connection)
        else:
            connection.writer.close()

    def discard_idle(self) -> None:
        idle, self.idle = self.idle, []
        for connection in idle:
            connection.writer.close()

    async def close(self) -> None:
        idle, self.idle = self.idle, []
        for connection in idle:
            connection.writer.close()
        for connection in idle:
            with contextlib.suppress(Exception):
                await connection.writer.wait_closed()


async def read_answer(reader: asyncio.StreamReader) -> Answer:
    """One HTTP/1.1 answer: status line, headers, and a body by length, chunks or EOF."""
    import asyncio

    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as error:
            if not error.partial:
                raise StaleConnection from None
            raise
        lines = head.decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        status = int(rest[:3])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip()
        if not 100 <= status < 200:
            break  # an interim 1xx answer is followed by the real one
    connection = headers.get("connection", "").lower()
    keep_alive = connection == "keep-alive" if version == "HTTP/1.0" else connection != "close"
    if "chunked" in headers.get("transfer-encoding", "").lower():
        chunks = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                    pass
                break
            chunks.append((await reader.readexactly(size + 2))[:-2])
        body = b"".join(chunks)
    elif "content-length" in headers:
        length = int(headers["content-length"])
        body = await reader.readexactly(length) if length else b""
    elif status in (204, 304):
        body = b""
    else:
        body = await reader.read()
        keep_alive = False
    return Answer(status, headers, body, keep_alive)
