"""Attacks on the console of `fanout serve`, with real clients: its page and events socket
answer a loopback Host only, with the run's key (in the URL the banner prints), and the
socket only to its own page's Origin; the feed shows no login token; `--no-console` serves
none of it. Before, a plain client with no Origin and no key got the whole feed (tokens in
`$connect` query strings included) and could publish and drop, from a DNS-rebound name too."""

from __future__ import annotations

import asyncio
import http.client
import json
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from tests.support.served import FREE_PORTS, Served, served

pytestmark = pytest.mark.server

T = TypeVar("T")
SECRETS = {  # what a client's login may carry: none of it may reach the feed
    "token": "SECRET-query-token",
    "Authorization": "Bearer SECRET-authorization",
    "Cookie": "session=SECRET-cookie",
    "X-Api-Key": "SECRET-api-key",
}


@pytest.fixture(scope="module")
def server() -> Iterator[Served]:
    yield from served("serve", *FREE_PORTS)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 60))


def where(server: Served) -> tuple[str, str]:
    """The console's ``host:port`` and key, from the URL the banner printed."""
    url = urlsplit(server.banner["console"])
    return url.netloc, parse_qs(url.query)["key"][0]


def get(server: Served, path: str, host: str | None = None) -> tuple[int, bytes]:
    """GET ``path`` from the server's port, naming ``host`` in the Host header."""
    netloc, _ = where(server)
    connection = http.client.HTTPConnection(netloc, timeout=10)
    try:
        connection.putrequest("GET", path, skip_host=True)
        connection.putheader("Host", netloc if host is None else host)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def feed(server: Served, query: str, origin: str | None, host: str | None = None) -> Any:
    """A client of the events socket; ``host`` is the name it dials (its Host header)."""
    netloc, _ = where(server)
    address, port = netloc.rsplit(":", 1)
    url = f"ws://{host or netloc}/_console/events{query}"
    return connect(url, origin=origin, host=address, port=int(port), proxy=None)  # type: ignore[arg-type]


async def refused(opening: Any) -> int:
    """The status a handshake was refused with."""
    with pytest.raises(InvalidStatus) as raised:
        async with opening:
            pass
    status: int = raised.value.response.status_code
    return status


async def recv(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(15):
        data: dict[str, Any] = json.loads(await ws.recv())
    return data


def test_the_banner_prints_the_console_url_with_its_key_and_the_page_asks_for_it(
    server: Served,
) -> None:
    _, key = where(server)
    assert len(key) >= 32
    status, page = get(server, f"/?key={key}")
    assert (status, b"fanout console" in page) == (200, True)
    for query in ("", "?key=", f"?key={key[:-1]}", f"?key={key}x", f"?other={key}"):
        assert get(server, "/" + query)[0] == 403, query
    # The page's files hold no secret: the Host is enough.
    assert get(server, "/_console/static/console.js")[0] == 200


def test_a_dns_rebound_host_is_refused_the_page_and_the_socket(server: Served) -> None:
    """A page of evil.example whose name now points at 127.0.0.1 reaches the port with
    ``Host: evil.example:PORT`` and a matching Origin: refused even with the key."""
    netloc, key = where(server)
    port = netloc.rsplit(":", 1)[1]
    for host in (f"evil.example:{port}", "127.0.0.1.evil.example", f"localhost.:{port}", ""):
        assert get(server, f"/?key={key}", host=host)[0] == 403, host
        assert get(server, "/_console/static/console.js", host=host)[0] == 403, host
    rebound = f"evil.example:{port}"
    status = run(refused(feed(server, f"?key={key}", f"http://{rebound}", host=rebound)))
    assert status == 403
    # The same port answers its own names.
    for host in (netloc, f"localhost:{port}"):
        assert get(server, f"/?key={key}", host=host)[0] == 200, host


def test_the_events_socket_refuses_a_client_without_the_key_or_the_pages_origin(
    server: Served,
) -> None:
    netloc, key = where(server)
    own = f"http://{netloc}"

    async def scenario() -> None:
        assert await refused(feed(server, "", None)) == 403  # the attack: no Origin, no key
        assert await refused(feed(server, "", own)) == 403
        assert await refused(feed(server, f"?key={key[:-1]}", own)) == 403
        assert await refused(feed(server, f"?key={key}", None)) == 403
        assert await refused(feed(server, f"?key={key}", "http://evil.example")) == 403
        assert await refused(feed(server, f"?key={key}", f"https://{netloc}.evil")) == 403
        async with feed(server, f"?key={key}", own) as ws:
            assert (await recv(ws))["kind"] == "hello"

    run(scenario())


def test_publish_and_drop_over_the_console_socket_need_the_key(server: Served) -> None:
    """Without the key the socket never opens, so its actions never run: the API's client
    gets the keyed publish as its first frame, and is still connected after."""
    netloc, key = where(server)
    own = f"http://{netloc}"

    async def scenario() -> None:
        async with connect(server.ws_url + "?room=lobby&client=victim", proxy=None) as client:
            async with feed(server, f"?key={key}", own) as keyed:
                victim = {"room": ["lobby"], "client": ["victim"]}
                opened = await _event(keyed, "invoke", route="$connect", query=victim)
                cid = opened["connection_id"]
                for action in (
                    {"id": 1, "action": "publish", "to": "room", "value": "lobby", "data": "x"},
                    {"id": 2, "action": "drop", "connection_id": cid},
                ):
                    for query, origin in (("", None), ("", own), (f"?key={key}", None)):
                        opening = feed(server, query, origin)
                        with pytest.raises(InvalidStatus):
                            async with opening as ws:
                                await ws.send(json.dumps(action))
                publish = {"id": 3, "action": "publish", "to": "room", "value": "lobby"}
                await keyed.send(json.dumps({**publish, "data": "from the page"}))
                assert (await _event(keyed, "reply", id=3))["ok"] is True
            async with asyncio.timeout(15):
                first = json.loads(await client.recv())
            assert first["data"] == "from the page", first
            await client.send(json.dumps({"action": "presence", "room": "lobby"}))
            async with asyncio.timeout(15):
                assert json.loads(await client.recv())["count"] == 1

    run(scenario())


async def _event(ws: ClientConnection, kind: str, **match: Any) -> dict[str, Any]:
    while True:
        event = await recv(ws)
        if event.get("kind") == kind and all(event.get(k) == v for k, v in match.items()):
            return event


def test_a_login_token_in_the_connect_query_or_headers_never_reaches_the_feed(
    server: Served,
) -> None:
    netloc, key = where(server)
    own = f"http://{netloc}"
    seen: list[str] = []

    async def until(ws: ClientConnection, kind: str, **match: Any) -> dict[str, Any]:
        """The next event of ``kind`` with ``match`` in it, every frame kept in ``seen``."""
        while True:
            async with asyncio.timeout(15):
                text = str(await ws.recv())
            seen.append(text)
            event: dict[str, Any] = json.loads(text)
            if event.get("kind") == kind and all(
                (event.get(k) == v) if k != "query" else (v in (event.get(k) or {}))
                for k, v in match.items()
            ):
                return event

    async def scenario() -> None:
        headers = {name: value for name, value in SECRETS.items() if name != "token"}
        query = f"?room=lobby&token={SECRETS['token']}&token=SECRET-twice"
        async with feed(server, f"?key={key}", own) as watching:
            async with connect(
                server.ws_url + query, additional_headers=headers, proxy=None
            ) as client:
                opened = await until(watching, "invoke", route="$connect", query="token")
                await client.send(json.dumps({"action": "sendMessage", "text": "hi"}))
                await until(watching, "fanout", route="sendMessage")
            # The rooms show; the token's name shows, its values do not.
            assert opened["query"] == {"room": ["lobby"], "token": ["[redacted]"] * 2}
            lowered = {name.lower(): value for name, value in opened["headers"].items()}
            for name in headers:
                assert lowered[name.lower()] == "[redacted]", name
            # A page opened late gets the table and the last events: none of it either.
            async with feed(server, f"?key={key}", own) as late:
                assert (await until(late, "hello"))["rows"]
                await until(late, "invoke", route="$connect", query="token")
                await until(late, "fanout", route="sendMessage")
        assert "SECRET" not in "\n".join(seen)

    run(scenario())


@pytest.fixture(scope="module")
def bare() -> Iterator[Served]:
    yield from served("serve", *FREE_PORTS, "--no-console")


def test_no_console_serves_no_page_and_no_feed(bare: Served) -> None:
    assert "console" not in bare.banner
    netloc = urlsplit(bare.ws_url).netloc

    async def scenario() -> None:
        # The path is the WebSocket API's like any other: no hello, no feed.
        origin = f"http://{netloc}"
        url = f"ws://{netloc}/_console/events?room=lobby"
        async with connect(url, origin=origin, proxy=None) as ws:  # type: ignore[arg-type]
            await ws.send(json.dumps({"action": "presence", "room": "lobby"}))
            async with asyncio.timeout(15):
                assert "count" in json.loads(await ws.recv())

    run(scenario())
    connection = http.client.HTTPConnection(netloc, timeout=10)
    try:
        connection.request("GET", "/")
        response = connection.getresponse()
        assert response.status != 200
        assert b"fanout console" not in response.read()
    finally:
        connection.close()
