"""A local stand-in for an API Gateway WebSocket API, in front of the local Management API.

Each socket gets an API-Gateway-like connection id; ``$connect`` runs during the opening
handshake (a non-2xx answer refuses it), every frame is routed by
``$request.body.action`` (``$default`` when no route matches), and a close runs
``$disconnect``. Handlers are plain ``handler(event, context)`` functions run on worker
threads, so the Management API on the same loop can take their posts meanwhile.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import http
import itertools
import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from fanout_core.local import authorizer as authorization
from fanout_core.local.authorizer import Authorizer
from fanout_core.local.lambda_context import LambdaContext, failed_invocation
from fanout_core.local.management_api import LocalConnections, new_connection_id

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]

IDLE_TIMEOUT = 10 * 60  # API Gateway's idle timeout
MAX_LIFETIME = 2 * 60 * 60  # API Gateway's connection duration cap
MAX_FRAME_BYTES = 128 * 1024
HANDSHAKE_SECONDS = 10.0  # how long a post waits for a handshake that $connect allowed


class SideSite(Protocol):
    """Pages served beside the API on its port (the console): plain GETs and a socket."""

    def handles(self, path: str) -> bool: ...
    def respond(self, websocket: ServerConnection, request: Request) -> Response | None: ...
    async def session(self, websocket: ServerConnection) -> None: ...


@dataclass(frozen=True)
class GatewayEvent:
    """Something the gateway did, for a display: ``kind`` is connect, message, invoke or close."""

    kind: str
    connection_id: str
    route_key: str = ""
    detail: str = ""
    status: int | None = None


@dataclass
class _Socket:
    connection_id: str
    websocket: ServerConnection
    connected_at_ms: int
    source_ip: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    last_seen: float = field(default_factory=time.monotonic)
    lose_disconnect: bool = False
    identity: dict[str, Any] | None = None  # the authorizer's principalId and context
    # Set once the handshake's answer is sent: a post accepted after $connect waits for it.
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    subprotocol: str | None = None  # what $connect answered in Sec-WebSocket-Protocol


async def _deliver(websocket: ServerConnection, data: bytes) -> None:
    """A posted frame to its client: UTF-8 as a text frame, as API Gateway sends it (a
    browser's ``onmessage`` then gets a string); anything else as a binary one."""
    try:
        text = data.decode()
    except UnicodeDecodeError:
        await websocket.send(data)
        return
    await websocket.send(text)


async def _deliver_when_open(socket: _Socket, data: bytes) -> None:
    """A post, once the handshake $connect allowed is done (never done: a 410)."""
    await asyncio.wait_for(socket.ready.wait(), HANDSHAKE_SECONDS)
    await _deliver(socket.websocket, data)


def _request_time(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")


class LocalWebSocketApi:
    """The WebSocket side of the local API; posts come back through ``connections``."""

    def __init__(
        self,
        routes: Mapping[str, Handler],
        connections: LocalConnections,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        stage: str = "local",
        idle_timeout: float = IDLE_TIMEOUT,
        max_lifetime: float = MAX_LIFETIME,
        on_event: Callable[[GatewayEvent], None] | None = None,
        authorizer: Authorizer | None = None,
        site: SideSite | None = None,
    ) -> None:
        self.routes = dict(routes)
        self.site = site
        self.authorizer = authorizer
        self.connections = connections
        self.host = host
        self.port = port
        self.stage = stage
        self.idle_timeout = idle_timeout
        self.max_lifetime = max_lifetime
        self.on_event = on_event
        self.api_id = secrets.token_hex(5)
        self.opened: list[str] = []  # connection ids in the order their sockets opened
        self._sockets: dict[str, _Socket] = {}
        self._server: Server | None = None
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._request_ids = itertools.count(1)
        self._reaper: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """The ``ws://`` URL clients connect to."""
        return f"ws://{self.host}:{self.port}/{self.stage}"

    @property
    def domain_name(self) -> str:
        """What ``requestContext.domainName`` carries."""
        return f"{self.host}:{self.port}"

    async def start(self) -> None:
        """Listen on the running loop."""
        self._idle.set()
        self.connections.on_close = self._close_from_api
        self._server = await serve(
            self._session,
            self.host,
            self.port,
            process_request=self._handshake,
            select_subprotocol=self._subprotocol,
            max_size=MAX_FRAME_BYTES,
            ping_interval=None,  # API Gateway does not ping clients; its idle timeout applies
        )
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        self._reaper = asyncio.create_task(self._reap())

    async def stop(self) -> None:
        """Close every socket (each runs ``$disconnect``) and stop listening."""
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        await self.wait_idle()

    async def wait_idle(self) -> None:
        """Wait until no handler invocation is running."""
        await self._idle.wait()

    def lose_disconnect(self, connection_id: str) -> None:
        """Drop this connection's ``$disconnect`` when it closes: API Gateway's is best effort."""
        socket = self._sockets.get(connection_id)
        if socket is not None:
            socket.lose_disconnect = True

    def drop(self, connection_id: str) -> bool:
        """Cut this connection without a close frame and without ``$disconnect``, as a phone
        losing its network does: the next post to it answers 410. False if it is not open."""
        socket = self._sockets.get(connection_id)
        if socket is None:
            return False
        socket.lose_disconnect = True
        socket.websocket.transport.abort()
        return True

    # -- events -------------------------------------------------------------------------

    def _context(self, socket: _Socket, route_key: str, event_type: str) -> dict[str, Any]:
        now_ms = int(time.time() * 1000)
        request_id = f"{secrets.token_urlsafe(9)}="[:12]
        context: dict[str, Any] = {
            "routeKey": route_key,
            "eventType": event_type,
            "extendedRequestId": request_id,
            "requestTime": _request_time(now_ms),
            "messageDirection": "IN",
            "stage": self.stage,
            "connectedAt": socket.connected_at_ms,
            "requestTimeEpoch": now_ms,
            "identity": {"sourceIp": socket.source_ip},
            "requestId": request_id,
            "domainName": self.domain_name,
            "connectionId": socket.connection_id,
            "apiId": self.api_id,
        }
        if event_type == "MESSAGE":
            context["messageId"] = f"{secrets.token_urlsafe(9)}="[:12]
        if socket.identity is not None:
            context["authorizer"] = dict(socket.identity)
        return context

    def _connect_event(self, socket: _Socket) -> dict[str, Any]:
        single = {k: v[-1] for k, v in socket.query.items()} or None
        return {
            "headers": dict(socket.headers),
            "multiValueHeaders": {k: [v] for k, v in socket.headers.items()},
            "queryStringParameters": single,
            "multiValueQueryStringParameters": dict(socket.query) or None,
            "requestContext": self._context(socket, "$connect", "CONNECT"),
            "isBase64Encoded": False,
        }

    def _message_event(self, socket: _Socket, data: str | bytes) -> dict[str, Any]:
        if isinstance(data, bytes):
            body, encoded, action = base64.b64encode(data).decode(), True, None
        else:
            body, encoded = data, False
            try:
                parsed = json.loads(data)
                action = parsed.get("action") if isinstance(parsed, dict) else None
            except (ValueError, RecursionError):  # the handler answers it, as on AWS
                action = None
        # The route selection expression is $request.body.action.
        route = action if isinstance(action, str) and action in self.routes else "$default"
        if route.startswith("$"):
            route = "$default"
        return {
            "requestContext": self._context(socket, route, "MESSAGE"),
            "body": body,
            "isBase64Encoded": encoded,
        }

    def _disconnect_event(self, socket: _Socket, code: int, reason: str) -> dict[str, Any]:
        context = self._context(socket, "$disconnect", "DISCONNECT")
        context["disconnectStatusCode"] = code
        context["disconnectReason"] = reason
        return {
            "headers": {"Host": self.domain_name},
            "multiValueHeaders": {"Host": [self.domain_name]},
            "requestContext": context,
            "isBase64Encoded": False,
        }

    async def _invoke(self, route: str, event: dict[str, Any]) -> Any:
        handler = self.routes.get(route) or self.routes.get("$default")
        if handler is None:
            return None
        self._in_flight += 1
        self._idle.clear()
        try:
            context = LambdaContext(getattr(handler, "__name__", route))
            return await asyncio.to_thread(handler, event, context)
        except asyncio.CancelledError:
            raise
        except BaseException:
            # Lambda fails the one invocation, whatever it raised (SystemExit and
            # KeyboardInterrupt included): the server and the client's socket stay up.
            log.exception("handler for %s raised", route)
            return failed_invocation(event)
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()
            cid = event["requestContext"]["connectionId"]
            self._emit("invoke", cid, route)

    def _emit(
        self, kind: str, cid: str, route: str = "", detail: str = "", status: int | None = None
    ) -> None:
        if self.on_event is not None:
            self.on_event(GatewayEvent(kind, cid, route, detail, status))

    # -- sockets ------------------------------------------------------------------------

    async def _handshake(self, websocket: ServerConnection, request: Request) -> Response | None:
        if self.site is not None and self.site.handles(request.path):
            websocket.fanout_site = True  # type: ignore[attr-defined]
            return self.site.respond(websocket, request)
        cid = new_connection_id()
        parts = urlsplit(request.path)
        peer = websocket.remote_address
        socket = _Socket(
            connection_id=cid,
            websocket=websocket,
            connected_at_ms=int(time.time() * 1000),
            source_ip=str(peer[0]) if peer else "127.0.0.1",
            query=parse_qs(parts.query),
            headers=dict(request.headers.raw_items()),
        )
        self._emit("connect", cid, "$connect")
        if self.authorizer is not None:
            refusal = await self._authorize(websocket, socket)
            if refusal is not None:
                return refusal
        answer = await self._invoke("$connect", self._connect_event(socket))
        status = answer.get("statusCode", 200) if isinstance(answer, dict) else 200
        if not isinstance(status, int) or not 200 <= status < 300:
            body = answer.get("body") if isinstance(answer, dict) else None
            return websocket.respond(http.HTTPStatus.FORBIDDEN, str(body or "Forbidden") + "\n")
        # API Gateway sends the Sec-WebSocket-Protocol the $connect answer names, if any.
        headers = answer.get("headers") if isinstance(answer, dict) else None
        if isinstance(headers, dict):
            named = {str(k).lower(): v for k, v in headers.items()}.get("sec-websocket-protocol")
            socket.subprotocol = named if isinstance(named, str) and named else None
        websocket.fanout_socket = socket  # type: ignore[attr-defined]
        # Established once $connect answers: a post is delivered, not a 410 deleting its rows.
        self.connections.open(cid, sink=functools.partial(_deliver_when_open, socket))
        return None

    def _subprotocol(self, websocket: ServerConnection, offered: Any) -> Any:
        socket = getattr(websocket, "fanout_socket", None)
        return socket.subprotocol if isinstance(socket, _Socket) else None

    async def _authorize(self, websocket: ServerConnection, socket: _Socket) -> Response | None:
        """Run the REQUEST authorizer; a refusal answer, or None with the identity bound."""
        assert self.authorizer is not None
        arn = f"arn:aws:execute-api:us-east-1:000000000000:{self.api_id}/{self.stage}/$connect"
        event = authorization.request_event(
            arn, socket.headers, socket.query, self._context(socket, "$connect", "CONNECT")
        )
        context = LambdaContext(getattr(self.authorizer, "__name__", "authorizer"))
        decided = await asyncio.to_thread(authorization.verdict, self.authorizer, event, context)
        self._emit("authorize", socket.connection_id, "$connect", decided.reason, decided.status)
        if decided.status != 200:
            return websocket.respond(http.HTTPStatus(decided.status), decided.reason + "\n")
        socket.identity = decided.identity
        return None

    async def _session(self, websocket: ServerConnection) -> None:
        if self.site is not None and getattr(websocket, "fanout_site", False):
            await self.site.session(websocket)
            return
        socket: _Socket = websocket.fanout_socket  # type: ignore[attr-defined]
        cid, socket.last_seen = socket.connection_id, time.monotonic()  # idle from its open
        self._sockets[cid] = socket
        self.opened.append(cid)
        socket.ready.set()  # posts since $connect answered go out now, in order
        code, reason = 1000, ""
        try:
            async for data in websocket:
                socket.last_seen = float("inf")  # not idle while a frame of it is handled
                event = self._message_event(socket, data)
                route = event["requestContext"]["routeKey"]
                self._emit("message", cid, route, data if isinstance(data, str) else "<binary>")
                answer = await self._invoke(route, event)
                socket.last_seen = time.monotonic()  # what came meanwhile is read next
                body = answer.get("body") if isinstance(answer, dict) else None
                # A handler's answer body goes back to the client, as a two-way route does.
                if isinstance(body, str) and body:
                    await websocket.send(body)
        except ConnectionClosed:
            pass
        finally:
            self.connections.close(cid)
            self._sockets.pop(cid, None)
            if websocket.close_code is not None:
                code, reason = websocket.close_code, websocket.close_reason or ""
            else:
                code, reason = 1006, "Connection lost"
            self._emit("close", cid, "$disconnect", reason, code)
            if not socket.lose_disconnect:
                await self._invoke("$disconnect", self._disconnect_event(socket, code, reason))

    def _close_from_api(self, connection_id: str) -> None:
        socket = self._sockets.get(connection_id)
        if socket is not None:
            asyncio.get_running_loop().create_task(socket.websocket.close(1000, "Closed by API"))

    async def _reap(self) -> None:
        # Idle and lifetime limits, as API Gateway enforces them (close code 1001).
        while True:
            await asyncio.sleep(min(1.0, self.idle_timeout / 4, self.max_lifetime / 4))
            now = time.monotonic()
            for socket in list(self._sockets.values()):
                age = time.time() - socket.connected_at_ms / 1000
                if now - socket.last_seen > self.idle_timeout or age > self.max_lifetime:
                    await socket.websocket.close(1001, "Going away")
