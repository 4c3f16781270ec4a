"""The console's event feed, what it observes, the files it serves, and its socket on `fanout
serve` (the page itself runs in a browser: tests/test_console_browser.py)."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
import weakref
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from fanout_core import metrics
from fanout_core.config import FanoutConfig
from fanout_core.local.console.feed import ConsoleFeed
from fanout_core.local.console.observe import Observer
from fanout_core.local.console.site import _file
from fanout_core.local.serve import LocalDeployment
from fanout_core.result import FanoutResult

STATIC = Path(__file__).resolve().parent.parent / "fanout_core/local/console/static"


def observer_of(feed: ConsoleFeed, rows: list[dict[str, Any]] | None = None) -> Observer:
    observer = Observer(feed, FanoutConfig(table="console-test"))
    observer.scan = lambda: list(rows or [])  # type: ignore[method-assign]
    return observer


def test_a_page_that_opens_late_gets_the_state_the_table_and_the_events_in_order() -> None:
    async def scenario() -> None:
        feed = ConsoleFeed()
        feed.state["config"] = {"table": "t"}
        feed.emit("invoke", route="$connect")
        feed.emit("rows", upsert=[{"key": "CONN#a CONN"}, {"key": "CONN#b CONN"}], delete=[])
        feed.emit("rows", upsert=[], delete=["CONN#a CONN"])
        queue, first = feed.subscribe()
        hello, *backlog = [json.loads(text) for text in first]
        assert hello["kind"] == "hello"
        assert hello["config"] == {"table": "t"}
        assert [row["key"] for row in hello["rows"]] == ["CONN#b CONN"]
        # Row diffs are state, not history: only the invocation is replayed.
        assert [event["kind"] for event in backlog] == ["invoke"]
        feed.emit("wire", dir="in")
        feed.emit("wire", dir="out")
        pushed = [json.loads(await queue.get()) for _ in range(2)]
        assert [e["dir"] for e in pushed] == ["in", "out"]
        assert pushed[1]["n"] == pushed[0]["n"] + 1
        feed.unsubscribe(queue)
        feed.emit("wire", dir="in")
        assert queue.empty()

    asyncio.run(scenario())


def test_the_table_diff_reports_rows_that_appear_change_and_go() -> None:
    feed = ConsoleFeed()
    observer = observer_of(feed)
    a, b = {"key": "A", "expires_at": 1}, {"key": "B", "expires_at": 1}
    observer.diff([a, b])
    observer.diff([a, b])  # nothing changed: nothing to say
    observer.diff([{"key": "A", "expires_at": 2}])
    events = feed.events()
    assert events == []  # row diffs are not kept for replay
    assert [row["key"] for row in feed.rows()] == ["A"]
    assert feed.rows()[0]["expires_at"] == 2


def test_an_invocation_reports_its_answer_its_metrics_its_fanout_and_the_410_ids() -> None:
    feed = ConsoleFeed()
    observer = observer_of(feed)
    previous = metrics.set_sink(observer.invocation_metrics)

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        with metrics.invocation("send_message"):
            observer.management_request("POST", "/local/@connections/gone1", b"{}", 410, b"")
            result = FanoutResult("gsi_query", "lobby", "m1", "room:lobby", delivered=1, gone=1)
            metrics.fanout_ended(2, 0.004)
            assert result.delivered == 1
            metrics.flush(FanoutConfig())
        return {"statusCode": 400, "body": json.dumps({"error": "bad_request"})}

    routes = observer.wrap_routes({"sendMessage": handler})
    observer.start()
    try:
        event = {"requestContext": {"connectionId": "sender1"}, "body": "{}"}
        answer = routes["sendMessage"](event, None)
    finally:
        observer.stop()
        metrics.set_sink(previous)
    assert answer["statusCode"] == 400
    fanout = feed.events("fanout")[0]
    assert fanout["route"] == "sendMessage"
    assert fanout["connection_id"] == "sender1"
    assert fanout["gone_ids"] == ["gone1"]
    assert (fanout["delivered"], fanout["audience"]) == (1, "room:lobby")
    # The invocation's metrics, parsed from the EMF document it would write on Lambda.
    [measured] = feed.events("metrics")
    assert measured["metrics"] == {
        "Delivered": 1,
        "Gone": 1,
        "AudienceSize": [2],
        "FanoutTime": [4.0],
    }
    assert measured["units"]["FanoutTime"] == "Milliseconds"
    invoke = feed.events("invoke")[0]
    assert (invoke["route"], invoke["status"]) == ("sendMessage", 400)
    assert invoke["metrics"] == measured["metrics"]
    assert json.loads(invoke["body"]) == {"error": "bad_request"}
    api = feed.events("api")[0]
    assert (api["method"], api["connection_id"], api["status"]) == ("POST", "gone1", 410)
    # The error answer went back to the client as a frame.
    assert feed.events("wire")[0]["dir"] == "out"


def test_a_handler_that_raises_is_shown_as_the_502_the_client_gets() -> None:
    feed = ConsoleFeed()
    observer = observer_of(feed)

    def handler(event: dict[str, Any], context: Any) -> Any:
        raise RuntimeError("boom")

    routes = observer.wrap_routes({"ping": handler})
    with pytest.raises(RuntimeError):
        routes["ping"]({"requestContext": {"connectionId": "c", "requestId": "r"}}, None)
    invoke = feed.events("invoke")[0]
    assert invoke["status"] == 502
    body = json.loads(invoke["body"])  # API Gateway's; "boom" stays in the log
    assert body == {"message": "Internal server error", "connectionId": "c", "requestId": "r"}


def test_only_the_package_files_are_served() -> None:
    page = _file("/")
    assert page is not None
    assert page[1].startswith("text/html")
    assert _file("/_console/static/console.js") is not None
    assert _file("/_console/fanout-client.mjs") is not None
    for path in (
        "/_console/static/../observe.py",
        "/_console/static/feed.py",
        "/_console/static/sub/console.js",
        "/_console/static/missing.js",
        "/_console/other",
    ):
        assert _file(path) is None, path


def _luminance(colour: str) -> float:
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    light, dark = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_text_colours_pass_wcag_aa_contrast_on_the_console_backgrounds() -> None:
    css = (STATIC / "console.css").read_text()
    colours = dict(re.findall(r"--([a-z]+):\s*(#[0-9a-f]{6});", css))
    for text in ("text", "muted", "accent", "ok", "warn", "bad"):
        for background in ("bg", "panel"):
            ratio = contrast(colours[text], colours[background])
            assert ratio >= 4.5, (text, background, round(ratio, 2))
    # White on the primary buttons and on a lit route; placeholders in the inputs.
    assert contrast("#ffffff", colours["lit"]) >= 4.5
    placeholder = re.search(r"::placeholder \{ color: (#[0-9a-f]{6})", css)
    assert placeholder is not None
    assert contrast(placeholder.group(1), colours["bg"]) >= 4.5


# Events a wait passed over, per feed: the console may report a row before the fan-out that
# wrote it ends, so the row's event can come first; a later wait must still find it.
_PASSED: weakref.WeakKeyDictionary[ClientConnection, list[dict[str, Any]]] = (
    weakref.WeakKeyDictionary()
)


async def _next(feed: ClientConnection, kind: str, **match: Any) -> dict[str, Any]:
    """The first event of ``kind`` with the ``match``ing fields, passed over or to come."""

    def wanted(event: dict[str, Any]) -> bool:
        return event["kind"] == kind and all(event.get(k) == v for k, v in match.items())

    passed = _PASSED.setdefault(feed, [])
    for index, old in enumerate(passed):
        if wanted(old):
            return passed.pop(index)
    async with asyncio.timeout(15):
        while True:
            event: dict[str, Any] = json.loads(await feed.recv())
            if wanted(event):
                return event
            passed.append(event)


@pytest.mark.server
def test_the_console_socket_on_fanout_serve_reports_and_acts() -> None:
    async def scenario() -> None:
        # The dropped client's 410 comes seconds after it connected: no connecting grace.
        history = {"FANOUT_HISTORY_SECONDS": "60", "FANOUT_CONNECTING_SECONDS": "0"}
        # A table of its own: moto keeps tables for the whole process, and the history rows
        # this test leaves (kept 60 s) must not show in another test's default table.
        async with LocalDeployment(
            console=True, settings=history, table="console-socket-test"
        ) as deployment:
            url = deployment.console_url
            page = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=10).read())
            assert b"fanout console" in page
            assert deployment.gateway is not None
            host, key = deployment.gateway.domain_name, deployment.console_key
            events_url = f"ws://{host}/_console/events?key={key}"
            with pytest.raises(InvalidStatus) as refused:
                await connect(events_url, origin="http://evil.example")  # type: ignore[arg-type]
            assert refused.value.response.status_code == 403
            # The page's own origin, as a browser names it.
            async with connect(events_url, origin=f"http://{host}") as feed:  # type: ignore[arg-type]
                hello = json.loads(await feed.recv())
                assert hello["kind"] == "hello"
                assert "sendMessage" in hello["routes"]
                a = await connect(deployment.ws_url + "?client=a")
                b = await connect(deployment.ws_url + "?client=b")
                opened = await _next(feed, "invoke", route="$connect")
                assert opened["query"] == {"client": ["a"]}  # the console's own tag, shown
                cid_b = (await _next(feed, "invoke", route="$connect"))["connection_id"]
                await a.send(json.dumps({"action": "sendMessage", "text": "hi"}))
                # The fan-out's result (reported when its invocation ends) and the numbered
                # frame as a history row (when the table is read again), in either order.
                sent: dict[str, Any] = {}
                kept: list[dict[str, Any]] = []
                async with asyncio.timeout(15):
                    while not (sent and kept):
                        event = json.loads(await feed.recv())
                        if event["kind"] == "fanout" and event.get("route") == "sendMessage":
                            sent = event
                        elif event["kind"] == "rows":
                            kept = kept or [
                                r for r in event["upsert"] if r.get("type") == "history"
                            ]
                assert (sent["delivered"], sent["gone"], sent["seq"]) == (2, 0, 1)
                assert (kept[0]["seq"], json.loads(kept[0]["frame"])["body"]) == (1, "hi")
                await feed.send(json.dumps({"id": 1, "action": "drop", "connection_id": cid_b}))
                assert (await _next(feed, "reply", id=1))["ok"] is True
                await _next(feed, "socket", state="closed", connection_id=cid_b)
                publish = {"id": 2, "action": "publish", "to": "everyone", "data": {"x": 1}}
                await feed.send(json.dumps(publish))
                reply = await _next(feed, "reply", id=2)
                assert (reply["result"]["delivered"], reply["result"]["gone"]) == (1, 1)
                while True:
                    rows = await _next(feed, "rows")
                    if f"CONN#{cid_b} CONN" in rows["delete"]:
                        break
                await feed.send(json.dumps({"id": 3, "action": "publish", "to": "nobody"}))
                assert "publish to one of" in (await _next(feed, "reply", id=3))["error"]
                # No development issuer: the page cannot sign a client in.
                await feed.send(json.dumps({"id": 4, "action": "token", "principal": "x"}))
                assert "fanout serve --dev-auth" in (await _next(feed, "reply", id=4))["error"]
                await a.close()
                await b.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))
