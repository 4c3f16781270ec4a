"""The console's HTTP side on the WebSocket API's own port: the page, its files and
``/_console/events``, a socket that pushes the feed and takes the page's actions.

It is a development tool that sees everything and can publish and drop: it answers only a
loopback ``Host`` (so a DNS-rebound name cannot reach it from a browser), and the page and
its socket only with the run's key (the URL ``fanout serve`` prints holds it), compared in
constant time. Its static files hold no secret: they need the Host only.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
from collections.abc import Callable
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from fanout_core.local.console.feed import ConsoleFeed
from fanout_core.local.console.observe import Observer

EVENTS_PATH = "/_console/events"
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
# Everything the page loads comes from here: it works offline.
POLICY = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:"
AUDIENCES = ("room", "user", "connections", "everyone")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def loopback_host(host: str | None) -> bool:
    """True for a Host header naming this machine: 127.0.0.1, localhost or [::1], any port."""
    try:
        return bool(host) and urlsplit(f"//{host}").hostname in LOOPBACK
    except ValueError:  # a Host that is no host[:port]
        return False


def _file(path: str) -> tuple[bytes, str] | None:
    """The bytes and type of a console file, or None: only files the package ships."""
    if path == "/":
        path = "/_console/static/index.html"
    if path == "/_console/fanout-client.mjs":
        folder, name = resources.files("fanout_core.client"), "fanout-client.mjs"
    elif path.startswith("/_console/static/"):
        folder, name = (
            resources.files("fanout_core.local.console") / "static",
            path.rsplit("/", 1)[-1],
        )
        if path.count("/") != 3:
            return None
    else:
        return None
    kind = TYPES.get(name[name.rfind(".") :]) if "." in name else None
    entry = folder / name
    if kind is None or name.startswith(".") or not entry.is_file():
        return None
    return entry.read_bytes(), kind


class ConsoleSite:
    """Serves the page; ``drop`` cuts a connection, ``publish`` fans out from the backend."""

    def __init__(
        self,
        feed: ConsoleFeed,
        observer: Observer,
        *,
        drop: Callable[[str], bool],
        publish: Callable[..., dict[str, Any]],
        mint: Callable[[str, list[str]], str] | None = None,
        key: str,
    ) -> None:
        if not key:
            raise ValueError("the console needs a key")
        self.key = key
        self.feed = feed
        self.observer = observer
        self.drop = drop
        self.publish = publish
        self.mint = mint  # `fanout serve --dev-auth`: a token for a test client

    def handles(self, path: str) -> bool:
        """True for the console's paths; the rest is the WebSocket API's."""
        path = urlsplit(path).path
        return path == "/" or path.startswith("/_console/")

    def respond(self, websocket: ServerConnection, request: Request) -> Response | None:
        """A file, a refusal, or None to open the events socket."""
        parts = urlsplit(request.path)
        hosts = request.headers.get_all("Host")
        host = hosts[0] if len(hosts) == 1 else ""
        if not loopback_host(host):
            return websocket.respond(403, "the console answers at 127.0.0.1, localhost or [::1]\n")
        if parts.path in ("/", EVENTS_PATH) and not self._keyed(parts.query):
            return websocket.respond(403, "open the console URL fanout serve printed (its key)\n")
        if parts.path == EVENTS_PATH:
            # Only the page opens this socket, and a browser always names the page's origin:
            # another site's page (or a client that names none) must not drive its clients.
            if request.headers.get_all("Origin") != [f"http://{host}"]:
                return websocket.respond(403, "the console socket takes its own page only\n")
            return None
        found = _file(parts.path)
        if found is None:
            return websocket.respond(404, "not found\n")
        body, kind = found
        headers = Headers(
            [
                ("Content-Type", kind),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"),
                ("X-Content-Type-Options", "nosniff"),
                ("Content-Security-Policy", POLICY),
                ("Referrer-Policy", "no-referrer"),  # the page's URL holds the run's key
                ("Connection", "close"),
            ]
        )
        return Response(200, "OK", headers, body)

    def _keyed(self, query: str) -> bool:
        given = parse_qs(query).get("key", [""])[-1]
        return hmac.compare_digest(given.encode(), self.key.encode())

    async def session(self, websocket: ServerConnection) -> None:
        """Push the feed to one page and answer its actions until it goes."""
        queue, first = self.feed.subscribe()
        try:
            for text in first:
                await websocket.send(text)

            async def push() -> None:
                while True:
                    await websocket.send(await queue.get())

            pusher = asyncio.create_task(push())
            try:
                async for raw in websocket:
                    await websocket.send(json.dumps(await self.act(raw), default=str))
            finally:
                pusher.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await pusher
        except ConnectionClosed:
            pass
        finally:
            self.feed.unsubscribe(queue)

    async def act(self, raw: str | bytes) -> dict[str, Any]:
        """One action of the page, answered as ``{"kind": "reply", "id", "ok", ...}``."""
        try:
            request = json.loads(raw)
            if not isinstance(request, dict):
                raise ValueError("an action is a JSON object")
        except ValueError as error:
            return {"kind": "reply", "id": None, "ok": False, "error": str(error)}
        reply: dict[str, Any] = {"kind": "reply", "id": request.get("id"), "ok": True}
        try:
            action = request.get("action")
            if action == "drop":
                reply["ok"] = self.drop(str(request.get("connection_id", "")))
                if not reply["ok"]:
                    reply["error"] = "no such open connection"
            elif action == "publish":
                reply["result"] = await asyncio.to_thread(self._publish, request)
            elif action == "token":
                # Answered to this page only: a token never goes into the feed.
                reply["token"] = self._token(request)
            else:
                raise ValueError(f"unknown action {action!r}")
        except Exception as error:  # shown in the page, as the backend would have raised it
            reply.update(ok=False, error=f"{type(error).__name__}: {error}")
        return reply

    def _token(self, request: dict[str, Any]) -> str:
        if self.mint is None:
            raise ValueError("sign-in is off: start `fanout serve --dev-auth` to sign clients in")
        principal = str(request.get("principal") or "").strip()[:128]
        rooms = request.get("rooms")
        rooms = [str(room) for room in rooms] if isinstance(rooms, list) else []
        return self.mint(principal, rooms)

    def _publish(self, request: dict[str, Any]) -> dict[str, Any]:
        to = request.get("to", "everyone")
        if to not in AUDIENCES:
            raise ValueError(f"publish to one of {', '.join(AUDIENCES)}")
        value = str(request.get("value") or "").strip()
        audience: dict[str, Any] = {}
        if to == "room":
            audience["room"] = value
        elif to == "user":
            audience["user"] = value
        elif to == "connections":
            audience["connections"] = [v for v in value.replace(",", " ").split() if v]
        if request.get("event"):
            audience["event"] = str(request["event"])
        return self.publish(request.get("data"), **audience)
