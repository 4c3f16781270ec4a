"""``AsyncHttpPoster``: signed HTTP/1.1 posts on pooled keep-alive connections, from a loop.

A small HTTP/1.1 client for one kind of request: the connections and answers are in
``http11``, SigV4 in ``signing``, private botocore uses in ``_private``. Each endpoint is
parsed once; a post only encodes its connection id and signs.
"""

from __future__ import annotations

import os
import ssl
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Unpack
from urllib.parse import urlsplit

import botocore

from fanout_core import _private
from fanout_core.delivery.http11 import Pool, StaleConnection, read_answer
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
from fanout_core.delivery.signing import PostSigner, canonical_path, encoded_id

if TYPE_CHECKING:
    # asyncio is imported where it is used: it costs cold start, and only delivery needs it.
    import asyncio

    from botocore.credentials import Credentials

_USER_AGENT = f"fanout-core botocore/{botocore.__version__}"


# The Management API is signed as "execute-api", not as its endpoint prefix.
SIGNING_NAME = "execute-api"
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class _Route:
    """Where the posts of one endpoint go, parsed once: only the connection id varies."""

    scheme: str
    host: str
    port: int
    host_header: str
    region: str
    path: str  # up to the connection id, percent-encoded as sent
    canonical: str  # the same, as signed


def _host_header(scheme: str, host: str, port: int | None) -> str:
    # As botocore signs it: lowercase, brackets for IPv6, the port only when not the default.
    value = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        value = f"{value}:{port}"
    return value


class AsyncHttpPoster(EndpointPoster):
    """Posts like ``BotoPoster``, without the client pipeline: about 10x less CPU per post.

    Each post is signed (SigV4, as botocore's ``SigV4Auth`` signs it, by ``PostSigner``: the
    parts every post shares are computed once) with the session's credentials and sent
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
        clock: Callable[[], float] = time.time,
        **settings: Unpack[PosterSettings],
    ) -> None:
        super().__init__(**settings)
        self.verify = verify  # True: botocore's CA bundle; a path: that bundle; False: none
        self.clock = clock  # the signing time, in seconds since the epoch
        self._credentials = credentials
        self._lock = threading.Lock()
        self._routes: dict[str, _Route] = {}
        self._signing: PostSigner | None = None
        self._pools: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[tuple[str, str, int], Pool]
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

        route = self._routes.get(endpoint)
        if route is None:
            route = self._route(endpoint)
        label = encoded_id(connection_id)
        if label in (".", ".."):  # a dot segment, which signing normalizes away
            canonical = canonical_path(route.path + label)
        else:
            canonical = route.canonical + label.replace("%", "%25")
        signer = self._signer()
        request = signer.request(
            route.path + label,
            canonical,
            signer.stamp(route.host_header, route.region),
            signer.payload(data),
        )
        pool = self._pool(route)
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
                    answer = await read_answer(connection.reader)
            except TimeoutError:
                connection.writer.close()
                return PostOutcome(PostStatus.NO_ANSWER, "ReadTimeoutError")
            except asyncio.CancelledError:
                connection.writer.close()  # while its loop still runs (Deliverer.close)
                raise
            except (StaleConnection, ConnectionError) as error:
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

    def _route(self, endpoint: str) -> _Route:
        base = (self.override or endpoint).rstrip("/")
        parts = urlsplit(f"{base}/@connections/")
        if parts.query:
            raise ValueError(f"a Management API endpoint has no query: {base}")
        scheme, host = parts.scheme, parts.hostname or ""
        route = _Route(
            scheme=scheme,
            host=host,
            port=parts.port or _DEFAULT_PORTS.get(scheme, 80),
            host_header=_host_header(scheme, host, parts.port),
            region=endpoint_region(endpoint, self.region),
            path=parts.path,
            canonical=canonical_path(parts.path),
        )
        if len(self._routes) >= 64:  # endpoints are a few APIs' stages; bound it anyway
            self._routes = {}
        self._routes[endpoint] = route
        return route

    def _signer(self) -> PostSigner:
        signer = self._signing
        if signer is None:
            signer = self._signing = PostSigner(
                self._resolve_credentials,
                service=SIGNING_NAME,
                user_agent=_USER_AGENT,
                clock=self.clock,
            )
        return signer

    def _pool(self, route: _Route) -> Pool:
        import asyncio

        loop = asyncio.get_running_loop()
        key = (route.scheme, route.host, route.port)
        pools = self._pools.get(loop)
        pool = pools.get(key) if pools is not None else None
        if pool is None:
            with self._lock:
                pools = self._pools.setdefault(loop, {})
                pool = pools.get(key)
                if pool is None:
                    context = self._tls_context() if route.scheme == "https" else None
                    pool = pools[key] = Pool(route.host, route.port, context, self.pool_size)
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
