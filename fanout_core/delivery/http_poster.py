"""``AsyncHttpPoster``: signed HTTP/1.1 posts on pooled keep-alive connections, from a loop.

A small HTTP/1.1 client for one kind of request: the pool, the answer reader (lengths, chunks,
EOF), TLS and SigV4 signing. Private asyncio and botocore uses are in ``_private``.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import threading
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Unpack
from urllib.parse import SplitResult, quote, urlsplit

import botocore

from fanout_core.delivery import _private
from fanout_core.delivery.loop import LoopThread
from fanout_core.delivery.posting import (
    OK,
    EndpointPoster,
    PosterSettings,
    PostOutcome,
    PostStatus,
    endpoint_region,
    failed,
)

if TYPE_CHECKING:
    # asyncio is imported where it is used: it costs cold start, and only delivery needs it.
    import asyncio

    from botocore.credentials import Credentials

_USER_AGENT = f"fanout-core botocore/{botocore.__version__}"


# The Management API is signed as "execute-api", not as its endpoint prefix.
SIGNING_NAME = "execute-api"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_MAX_HEAD_BYTES = 64 * 1024
# A keep-alive connection idle longer than this is closed, not reused: NAT gateways and
# load balancers drop idle flows silently (after 350 s on a NAT gateway), and a thawed
# Lambda container finds its connections as old as the pause.
_MAX_IDLE_SECONDS = 60.0


class _StaleConnection(Exception):
    """A reused keep-alive connection was closed before any byte of the answer came back."""


@dataclass(slots=True)
class _Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    keep_alive: bool


@dataclass(slots=True)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    reused: bool = False
    idle_since: float = 0.0

    def usable(self) -> bool:
        # Bytes nobody asked for (a 408 before the server hangs up) would be read as the
        # next post's answer: such a connection is thrown away, as urllib3 does.
        unread = _private.unread_bytes(self.reader)
        return not (self.writer.is_closing() or self.reader.at_eof() or unread)


class _Pool:
    """Keep-alive connections to one origin, for the event loop that opened them."""

    def __init__(self, host: str, port: int, ssl_context: ssl.SSLContext | None, size: int):
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.size = size
        self.idle: list[_Connection] = []

    async def acquire(self, timeout: float, *, new: bool = False) -> _Connection:
        import asyncio

        if new:  # a reused connection just failed: the other idle ones are as old
            self.discard_idle()
        now = time.monotonic()
        while self.idle:
            connection = self.idle.pop()
            if connection.usable() and now - connection.idle_since < _MAX_IDLE_SECONDS:
                connection.reused = True
                return connection
            connection.writer.close()
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(
                self.host,
                self.port,
                ssl=self.ssl_context,
                server_hostname=self.host if self.ssl_context else None,
                limit=_MAX_HEAD_BYTES,
            )
        return _Connection(reader, writer)

    def release(self, connection: _Connection, *, keep: bool) -> None:
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


async def _read_answer(reader: asyncio.StreamReader) -> _Answer:
    """One HTTP/1.1 answer: status line, headers, and a body by length, chunks or EOF."""
    import asyncio

    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as error:
            if not error.partial:
                raise _StaleConnection from None
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
    return _Answer(status, headers, body, keep_alive)


def _host_header(scheme: str, host: str, port: int | None) -> str:
    # As botocore signs it: lowercase, brackets for IPv6, the port only when not the default.
    value = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        value = f"{value}:{port}"
    return value


class AsyncHttpPoster(EndpointPoster):
    """Posts like ``BotoPoster``, without the client pipeline: about 5x less CPU per post.

    Each post is signed by botocore's ``SigV4Auth`` with the session's credentials and sent
    over a keep-alive connection from a pool, from an asyncio event loop: the ``Deliverer``
    runs up to ``concurrency`` posts on one loop thread instead of one thread per post. Error
    codes come from botocore's own rest-json parser (``x-amzn-ErrorType``, then the body), so
    every answer maps to the same PostOutcome as ``BotoPoster``'s. ``override`` replaces every
    endpoint (``AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI``); the region is that of the
    ``execute-api`` host. Proxies (``HTTPS_PROXY``) are not supported: use ``BotoPoster``.
    Nothing is built before the first post.
    """

    def __init__(
        self,
        *,
        credentials: Credentials | None = None,
        verify: bool | str = True,
        **settings: Unpack[PosterSettings],
    ) -> None:
        super().__init__(**settings)
        self.verify = verify  # True: botocore's CA bundle; a path: that bundle; False: none
        self._credentials = credentials
        self._lock = threading.Lock()
        self._pools: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[tuple[str, str, int], _Pool]
        ] = weakref.WeakKeyDictionary()
        self._ssl_context: ssl.SSLContext | None = None
        self._loop = LoopThread("fanout-poster")  # for blocking callers of post()

    # -- posting ------------------------------------------------------------------------

    def post(self, endpoint: str, connection_id: str, data: bytes) -> PostOutcome:
        """Post ``data`` from a blocking caller (on the poster's own loop thread)."""
        import asyncio

        future = asyncio.run_coroutine_threadsafe(
            self.post_async(endpoint, connection_id, data), self._loop.get()
        )
        return future.result()

    async def post_async(self, endpoint: str, connection_id: str, data: bytes) -> PostOutcome:
        """Post ``data`` from the running event loop; map every answer to a PostOutcome."""
        import asyncio

        base = (self.override or endpoint).rstrip("/")
        # botocore's percent_encode of a URI label: only - . _ ~ stay as they are.
        url = f"{base}/@connections/{quote(connection_id, safe='-._~')}"
        parts = urlsplit(url)
        scheme, host = parts.scheme, parts.hostname or ""
        host_header = _host_header(scheme, host, parts.port)
        request = self._signed_request(
            url, host_header, parts, data, endpoint_region(endpoint, self.region)
        )
        pool = self._pool(scheme, host, parts.port or _DEFAULT_PORTS.get(scheme, 80))
        for attempt in (1, 2):
            try:
                connection = await pool.acquire(self.timeout, new=attempt == 2)
            except TimeoutError:
                return PostOutcome(PostStatus.NO_ANSWER, "ConnectTimeoutError")
            except ssl.SSLCertVerificationError as error:
                # A configuration problem, not a flaky network: retrying cannot help.
                return PostOutcome(PostStatus.ERROR, f"SSLError: {error.verify_message}")
            except OSError:
                return PostOutcome(PostStatus.NO_ANSWER, "EndpointConnectionError")
            try:
                async with asyncio.timeout(self.timeout):
                    connection.writer.write(request)
                    await connection.writer.drain()
                    answer = await _read_answer(connection.reader)
            except TimeoutError:
                connection.writer.close()
                return PostOutcome(PostStatus.NO_ANSWER, "ReadTimeoutError")
            except asyncio.CancelledError:
                connection.writer.close()  # while its loop still runs (Deliverer.close)
                raise
            except (_StaleConnection, ConnectionError) as error:
                connection.writer.close()
                # A keep-alive connection the server had closed while idle: the request
                # never reached it, so sending it once more on a new connection is safe.
                if (
                    connection.reused
                    and attempt == 1
                    and not isinstance(error, ConnectionAbortedError)
                ):
                    continue
                return PostOutcome(PostStatus.NO_ANSWER, "ConnectionClosedError")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, OSError):
                # A broken or garbled answer, or a socket error (TLS included) mid-exchange:
                # as botocore reports them, a retryable ConnectionClosedError.
                connection.writer.close()
                return PostOutcome(PostStatus.NO_ANSWER, "ConnectionClosedError")
            pool.release(connection, keep=answer.keep_alive)
            if answer.status < 301:  # botocore's line between success and error
                return OK
            return failed(
                _private.error_code(answer.status, answer.headers, answer.body), answer.status
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def _signed_request(
        self, url: str, host_header: str, parts: SplitResult, data: bytes, region: str
    ) -> bytes:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        credentials = self._resolve_credentials()
        request = AWSRequest(method="POST", url=url, data=data, headers={"Host": host_header})
        SigV4Auth(credentials.get_frozen_credentials(), SIGNING_NAME, region).add_auth(request)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        lines = [f"POST {target} HTTP/1.1"]
        lines += [f"{name}: {value}" for name, value in request.headers.items()]
        lines += [f"User-Agent: {_USER_AGENT}", f"Content-Length: {len(data)}", "", ""]
        return "\r\n".join(lines).encode("latin-1") + data

    # -- lazily built parts -------------------------------------------------------------

    def _resolve_credentials(self) -> Credentials:
        if self._credentials is None:
            with self._lock:
                if self._credentials is None:
                    import botocore.session
                    from botocore.exceptions import NoCredentialsError

                    credentials = botocore.session.get_session().get_credentials()
                    if credentials is None:
                        raise NoCredentialsError()
                    self._credentials = credentials
        return self._credentials

    def _pool(self, scheme: str, host: str, port: int) -> _Pool:
        import asyncio

        loop = asyncio.get_running_loop()
        key = (scheme, host, port)
        with self._lock:
            pools = self._pools.setdefault(loop, {})
            pool = pools.get(key)
            if pool is None:
                context = self._tls_context() if scheme == "https" else None
                pool = pools[key] = _Pool(host, port, context, self.pool_size)
        return pool

    def _tls_context(self) -> ssl.SSLContext:
        # Called with the lock held.
        if self._ssl_context is None:
            if self.verify is False:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            else:
                from botocore.httpsession import get_cert_path

                if self.verify is True:
                    bundle = os.environ.get("AWS_CA_BUNDLE") or get_cert_path(True)
                else:
                    bundle = self.verify
                context = ssl.create_default_context(cafile=bundle)
            self._ssl_context = context
        return self._ssl_context

    # -- closing ------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the keep-alive connections of the running loop."""
        import asyncio

        with self._lock:
            pools = list(self._pools.pop(asyncio.get_running_loop(), {}).values())
        for pool in pools:
            await pool.close()

    def close(self) -> None:
        """Close the poster's own loop (used by ``post``) and its connections."""
        self._loop.stop(self.aclose)
