"""A local API Gateway Management API over real HTTP, answering like AWS.

``POST /{stage}/@connections/{id}`` delivers to a live connection (200), answers 410
GoneException for an unknown or closed one, 413 over 128 KB. ``GET`` describes a connection
and ``DELETE`` closes it. Any of the three answers whatever faults a test injects for it (403,
410, 429, 500, or no answer at all). moto cannot do this: it accepts a post to any id.
Given ``credentials`` (access key id to secret key), it checks every request's SigV4
signature as AWS does, recomputed with botocore, and answers 403 to a missing or wrong one.
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import itertools
import json
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Self
from urllib.parse import unquote

from fanout_core.local.connections import (
    ERROR_TYPES,
    Fault,
    Faults,
    LocalConnection,
    LocalConnections,
    new_connection_id,
)
from fanout_core.message import MAX_PAYLOAD_BYTES

__all__ = [
    "Fault",
    "Faults",
    "LocalConnection",
    "LocalConnections",
    "LocalManagementApi",
    "new_connection_id",
]

_REASONS = {
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    410: "Gone",
    413: "Payload Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
}
_MAX_HEADER_BYTES = 16 * 1024
SIGNING_NAME = "execute-api"
_MAX_CLOCK_SKEW_SECONDS = 300  # AWS refuses a signature dated further from its clock
SideRoute = Callable[[str, Mapping[str, str], bytes], Awaitable[tuple[int, bytes, dict[str, str]]]]


@dataclass
class _Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def _error(status: int, message: str | None = None) -> _Response:
    error_type = ERROR_TYPES.get(status, "BadRequestException")
    return _Response(
        status,
        json.dumps({"message": message}).encode(),
        {"x-amzn-ErrorType": error_type, "Content-Type": "application/json"},
    )


async def _injected(fault: Fault) -> _Response | None:
    """The fault's error answer; for status 0, none after ``hang_seconds``."""
    if fault.status == 0:
        await asyncio.sleep(fault.hang_seconds)
        return None
    return _error(fault.status, f"injected {fault.status}")


def _denied(error_type: str, message: str) -> _Response:
    # The 403s of API Gateway's front door, with their own error types.
    response = _error(403, message)
    response.headers["x-amzn-ErrorType"] = error_type
    return response


def check_signature(
    credentials: Mapping[str, str],
    method: str,
    target: str,
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    services: tuple[str, ...] = (SIGNING_NAME,),
) -> _Response | None:
    """None if the request is signed (SigV4) by one of ``credentials``; else AWS's 403.

    The signature is recomputed by botocore's ``SigV4Auth`` over the headers the request
    says it signed, for the scope it names, and compared in constant time.
    """
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    authorization = headers.get("authorization", "")
    if not authorization:
        return _denied("MissingAuthenticationTokenException", "Missing Authentication Token")
    fields = {}
    algorithm, _, rest = authorization.partition(" ")
    for part in rest.split(","):
        name, _, value = part.strip().partition("=")
        fields[name] = value
    scope = fields.get("Credential", "").split("/")
    if algorithm != "AWS4-HMAC-SHA256" or len(scope) != 5 or "Signature" not in fields:
        return _denied("IncompleteSignatureException", f"Authorization header is invalid: {rest}")
    access_key, day, region, service, terminal = scope
    secret = credentials.get(access_key)
    if secret is None:
        return _denied(
            "UnrecognizedClientException", "The security token included in the request is invalid."
        )
    amz_date = headers.get("x-amz-date", "")
    try:
        signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return _denied("IncompleteSignatureException", "X-Amz-Date is missing or malformed")
    if abs(now - signed_at) > _MAX_CLOCK_SKEW_SECONDS:
        return _denied("InvalidSignatureException", "Signature expired")
    signed = fields.get("SignedHeaders", "").split(";")
    if "host" not in signed or any(name not in headers for name in signed):
        return _denied("IncompleteSignatureException", "a signed header is missing")
    if service not in services or (terminal, day) != ("aws4_request", amz_date[:8]):
        wrong = "/".join(scope[1:])
        return _denied("InvalidSignatureException", f"Credential is scoped to {wrong}")
    request = AWSRequest(
        method=method,
        url=f"http://{headers['host']}{target}",
        data=body,
        headers={name: headers[name] for name in signed},
    )
    request.context["timestamp"] = amz_date
    token = headers.get("x-amz-security-token")
    auth = SigV4Auth(Credentials(access_key, secret, token), service, region)
    expected = auth.signature(
        auth.string_to_sign(request, auth.canonical_request(request)), request
    )
    if not hmac.compare_digest(expected, fields["Signature"]):
        return _denied(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided.",
        )
    return None


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class LocalManagementApi:
    """The Management API on 127.0.0.1.

    Use ``async with`` inside a running loop (``fanout serve`` does), or ``with`` to run
    it on a thread of its own (tests and benchmarks do).
    """

    def __init__(
        self,
        connections: LocalConnections | None = None,
        faults: Faults | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        credentials: Mapping[str, str] | None = None,
    ) -> None:
        self.connections = connections or LocalConnections()
        # Access key id -> secret key: when given, every request must be signed by one.
        self.credentials = credentials
        self.faults = faults or Faults()
        self.host = host
        self.port = port
        self.requests: collections.Counter[tuple[str, int]] = collections.Counter()
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ids = itertools.count(1)
        self._writers: set[asyncio.StreamWriter] = set()
        self.in_flight = 0
        self.max_in_flight = 0  # the most posts ever being answered at once
        self.on_post: Callable[[str, int], None] | None = None  # (connection id, status)
        # (method, path, body, status, answer body) of every request; status 0: no answer
        self.on_request: Callable[[str, str, bytes, int, bytes], None] | None = None
        # Path -> what answers it instead (fanout serve's POST /publish): (method, headers,
        # body) -> (status, body, headers).
        self.side_routes: dict[str, SideRoute] = {}

    @property
    def url(self) -> str:
        """The base URL; a stage path after it (``/local``) is accepted and ignored."""
        return f"http://{self.host}:{self.port}"

    def total(self, method: str = "POST", status: int | None = None) -> int:
        """How many requests with ``method`` (and ``status``) were answered."""
        return sum(n for (m, s), n in self.requests.items() if m == method and status in (None, s))

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on the running loop."""
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port, limit=MAX_PAYLOAD_BYTES * 4
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and drop open HTTP connections."""
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def __enter__(self) -> Self:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                loop.run_until_complete(self.start())
            except BaseException as error:
                failure.append(error)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.close()

        self._thread = threading.Thread(target=run, name="fanout-management-api", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None
            self._thread = None

    # -- HTTP ---------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if len(head) > _MAX_HEADER_BYTES:
                    break
                lines = head.decode("latin-1").split("\r\n")
                method, target, _version = [*lines[0].split(" "), "", ""][:3]
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name:
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0") or 0)
                body = await reader.readexactly(length) if length else b""
                side = self.side_routes.get(target.split("?", 1)[0])
                if side is not None:
                    response: _Response | None = _Response(*await side(method, headers, body))
                else:
                    denied = self.credentials and check_signature(
                        self.credentials, method, target, headers, body, time.time()
                    )
                    response = denied or await self._handle(method, target, body)
                if self.on_request is not None:
                    status, answer = (
                        (0, b"") if response is None else (response.status, response.body)
                    )
                    self.on_request(method, unquote(target), body, status, answer)
                if response is None:  # an injected timeout: the client gives up first
                    break
                self.requests[(method, response.status)] += 1
                keep_alive = headers.get("connection", "").lower() != "close"
                head_lines = [f"HTTP/1.1 {response.status} {_REASONS.get(response.status, '')}"]
                response.headers.setdefault("x-amzn-RequestId", f"local-{next(self._ids)}")
                response.headers["Content-Length"] = str(len(response.body))
                response.headers["Connection"] = "keep-alive" if keep_alive else "close"
                head_lines += [f"{k}: {v}" for k, v in response.headers.items()]
                writer.write(("\r\n".join(head_lines) + "\r\n\r\n").encode() + response.body)
                await writer.drain()
                if not keep_alive:
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        except asyncio.CancelledError:
            # Shutdown with a keep-alive connection open: end quietly, the loop is closing.
            pass
        except ValueError:
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _handle(self, method: str, target: str, body: bytes) -> _Response | None:
        path = unquote(target.split("?", 1)[0])
        marker = "/@connections/"
        if marker not in path:
            return _error(404, f"no route for {path}")
        connection_id = path.split(marker, 1)[1]
        if method == "POST":
            return await self._post(connection_id, body)
        fault = self.faults.take(connection_id, method)
        if fault is not None:
            return await _injected(fault)
        connection = self.connections.get(connection_id)
        if connection is None:
            return _error(410)
        if method == "GET":
            info = {
                "connectedAt": _iso(connection.connected_at),
                "lastActiveAt": _iso(connection.last_active_at),
                "identity": {"sourceIp": connection.source_ip, "userAgent": connection.user_agent},
            }
            return _Response(200, json.dumps(info).encode(), {"Content-Type": "application/json"})
        if method == "DELETE":
            self.connections.close(connection_id)
            if self.connections.on_close is not None:
                self.connections.on_close(connection_id)
            return _Response(204)
        return _error(405, f"{method} is not allowed")

    async def _post(self, connection_id: str, body: bytes) -> _Response | None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            response = await self._answer_post(connection_id, body)
        finally:
            self.in_flight -= 1
        if self.on_post is not None:
            self.on_post(connection_id, 0 if response is None else response.status)
        return response

    async def _answer_post(self, connection_id: str, body: bytes) -> _Response | None:
        if self.faults.over_account_limit():  # at the front door, before anything else
            return _error(429, "Too Many Requests")
        if self.faults.latency:
            await asyncio.sleep(self.faults.latency)
        fault = self.faults.take(connection_id)
        if fault is not None:
            return await _injected(fault)
        if len(body) > MAX_PAYLOAD_BYTES:
            return _error(413, "Message too long")
        connection = self.connections.get(connection_id)
        if connection is None:
            return _error(410)
        connection.inbox.append(body)
        connection.last_active_at = time.time()
        sink = connection.sink  # None once closed (close drops it)
        if sink is not None:
            try:
                await sink(body)
            except Exception:
                # The socket died under us: from now on the connection is gone.
                self.connections.close(connection_id)
                return _error(410)
        return _Response(200)
