"""The console in a real browser: headless Chromium (the system's) drives `fanout serve`.

Run with `make test-browser`; the default run leaves it out (marker `browser`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOT = ROOT / "docs" / "console.png"
TIMEOUT_MS = 15_000


def chromium_path() -> str:
    """The system's Chromium: nothing here downloads a browser of its own."""
    for candidate in (os.environ.get("FANOUT_CHROMIUM"), "chromium", "chromium-browser"):
        found = candidate and shutil.which(candidate)
        if found:
            return found
    pytest.fail("no chromium on PATH: `make test-browser` installs Debian's package")


@pytest.fixture(scope="module")
def console_url() -> Iterator[str]:
    """`fanout serve` on a free port, in its own process, as a developer runs it."""
    yield from started("serve", "--port", "0", "--management-port", "0", "--dynamodb-port", "0")


def started(*command: str) -> Iterator[str]:
    """Run ``fanout COMMAND``; yield the console URL it announces, stop it after."""
    process = subprocess.Popen(
        [sys.executable, "-m", "fanout_core.cli", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        # A dropped client's 410 comes seconds after its connect: deleted at once.
        env={**os.environ, "FANOUT_CONNECTING_SECONDS": "0"},
    )
    assert process.stdout is not None
    url, lines = None, []
    deadline = time.monotonic() + 60
    for line in process.stdout:
        lines.append(line)
        if match := re.match(r"console:\s+(\S+)", line):
            url = match.group(1)
        if line.strip() == "ready" or time.monotonic() > deadline:
            break
    try:
        assert url is not None, "".join(lines)
        yield url
    finally:
        process.terminate()
        process.wait(15)
        process.stdout.close()


def test_console_drives_clients_publishes_and_steps_the_demo(console_url: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.on(
            "console",
            lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
        )
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        expect.set_options(timeout=TIMEOUT_MS)
        page.goto(console_url)
        expect(page.locator("#feed-state")).to_have_text("live")
        expect(page.locator("#routes li[data-route='sendMessage']")).to_be_visible()

        # Two clients, opened from the keyboard: Tab to the button, Enter.
        for _ in range(2):
            focus_by_tab(page, "open-client")
            page.keyboard.press("Enter")
        a, b = page.locator("[data-client='A']"), page.locator("[data-client='B']")
        for client in (a, b):
            expect(client.locator(".status")).to_have_text("open")
            expect(client.locator(".cid")).to_have_text(re.compile(r"\S{16}"))
        cid_a, cid_b = a.locator(".cid").inner_text(), b.locator(".cid").inner_text()

        # A sends to everyone: both inboxes, the route lights, both connection rows.
        a.get_by_label("A: message").fill("hello from the browser")
        a.locator("button[data-action='send']").click()
        for client in (a, b):
            expect(client.locator(".inbox")).to_contain_text("hello from the browser")
        expect(page.locator("#invocations tr[data-route='sendMessage']")).to_have_count(1)
        rows = page.locator("#table-rows")
        for cid in (cid_a, cid_b):
            expect(rows.locator(f"tr[data-key='CONN#{cid} CONN']")).to_have_count(1)
        expect(page.locator("#fanouts li").first).to_contain_text("delivered 2")

        # B drops without a close frame: its row stays until a fan-out meets the 410.
        b.locator("button[data-action='drop']").click()
        expect(b.locator(".status")).to_have_text("dropped")
        expect(page.locator(f"#connections tr[data-connection='{cid_b}']")).to_contain_text(
            "row left"
        )
        expect(rows.locator(f"tr[data-connection='{cid_b}']")).not_to_have_count(0)

        # A publish from the backend box reaches A, meets B's 410 and deletes B's rows.
        page.locator("#publish-to").select_option("everyone")
        page.locator("#publish-event").fill("notice")
        page.locator("#publish-data").fill('{"text": "from the backend"}')
        page.locator("#publish-send").click()
        expect(a.locator(".inbox")).to_contain_text("from the backend")
        expect(page.locator("#publish-result")).to_contain_text("delivered 1, gone 1")
        expect(page.locator("#fanouts li.has-gone").first).to_contain_text(cid_b)
        expect(rows.locator(f"tr[data-connection='{cid_b}']")).to_have_count(0)
        gone_post = page.locator(f"#wire li[data-kind='api'][data-connection='{cid_b}']")
        expect(gone_post.first).to_contain_text("410")
        expect(rows.locator(f"tr[data-connection='{cid_a}']")).not_to_have_count(0)

        # The demo's stages, stepped through with the page's own clients.
        page.locator("#demo-open").click()
        expect(page.locator("#demo-step")).to_have_text("step 0 / 7")
        for step in range(1, 8):
            page.locator("#demo-next").click()
            expect(page.locator("#demo-step")).to_have_text(f"step {step} / 7")
            expect(page.locator("#demo-note")).not_to_have_class(re.compile("bad"))
        expect(page.locator("#demo-wire")).to_contain_text("410 GoneException for B")
        expect(page.locator("#demo-note")).to_contain_text("every inbox got every message")
        expect(page.locator("#workers-part")).to_be_hidden()  # gsi_query runs no SQS worker

        # Phone width: one column, nothing wider than the window.
        page.set_viewport_size({"width": 390, "height": 844})
        width: Any = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390
        browser.close()
    assert not problems, problems


def open_page(playwright: Any, problems: list[str]) -> tuple[Any, Any]:
    """Chromium and a page whose console errors and page errors go into ``problems``."""
    from playwright.sync_api import expect

    browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    expect.set_options(timeout=TIMEOUT_MS)
    return browser, page


@pytest.mark.parametrize("option", [("--strategy", "sqs_batched"), ("--policy", "owner_rooms")])
def test_demo_ui_steps_through_the_stages(option: tuple[str, str]) -> None:
    """`fanout demo --ui` opens on the stages: on sqs_batched the worker's runs show as they
    happen; under a policy the clients sign in and talk in the lobby."""
    from playwright.sync_api import expect, sync_playwright

    command = ("demo", "--ui", "--port", "0", "--connect", "2", "--send", "1", *option)
    problems: list[str] = []
    for url in started(*command):
        with sync_playwright() as playwright:
            browser, page = open_page(playwright, problems)
            # The run's key, and the demo's stages.
            assert set(parse_qs(urlsplit(url).query, keep_blank_values=True)) == {"key", "demo"}
            page.goto(url)
            expect(page.locator("#demo-step")).to_have_text("step 0 / 7")
            for step in range(1, 8):
                page.get_by_role("button", name="Next stage").click()
                expect(page.locator("#demo-step")).to_have_text(f"step {step} / 7")
            expect(page.locator("#demo-note")).to_contain_text("every inbox got every message")
            if option[0] == "--strategy":
                expect(page.locator("#fact-strategy")).to_have_text("sqs_batched")
                expect(page.locator("#workers li").first).to_contain_text("sqs_worker")
                worker_fanouts = page.locator("#fanouts li[data-kind='worker']")
                expect(worker_fanouts.first).to_contain_text("from sqs_worker")
                fanouts = page.locator("#fanouts li[data-kind='fanout']")
                expect(fanouts.first).to_contain_text("sqs_batched")
                expect(page.locator("#routes li[data-route='sqs_worker']")).to_be_visible()
                expect(page.locator("#workers-part")).to_be_visible()
            else:
                expect(page.locator("#fact-policy")).to_have_text("owner_rooms")
                a = page.locator("#connections tr", has_text="demo-A")
                expect(a).to_contain_text("lobby")
                expect(page.locator("#fanouts li").first).to_contain_text("room:lobby")
            browser.close()
    assert not problems, problems


def test_a_console_client_signs_in_as_a_principal(tmp_path: Path) -> None:
    """`fanout serve --dev-auth`: a client opened with a principal signs in through the
    library's authorizer, its token sent as the subprotocol (Chromium closes a socket whose
    answer picks none), and joins its own rooms only; the token never reaches the feed."""
    from playwright.sync_api import WebSocket, expect, sync_playwright

    command = ["serve", "--port", "0", "--management-port", "0", "--dynamodb-port", "0"]
    command += ["--dev-auth", "--dev-key", str(tmp_path / "dev.pem"), "--policy", "owner_rooms"]
    problems: list[str] = []
    feed: list[str] = []

    def watch(socket: WebSocket) -> None:
        if socket.url.split("?")[0].endswith("/_console/events"):
            socket.on("framereceived", lambda payload: feed.append(str(payload)))

    for url in started(*command):
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("websocket", watch)
            page.goto(url)
            expect(page.locator("#feed-state")).to_have_text("live")
            page.locator("#open-rooms").fill("lobby")
            page.locator("#open-principal").fill("alice")
            page.locator("#open-client").click()
            a = page.locator("[data-client='A']")
            expect(a.locator(".status")).to_have_text("open")
            expect(a.locator(".cid")).to_have_text(re.compile(r"\S{16}"))
            cid = a.locator(".cid").inner_text()
            expect(page.locator(f"#connections tr[data-connection='{cid}']")).to_contain_text(
                "alice"
            )
            a.get_by_label("A: message").fill("signed in")
            a.locator("button[data-action='send']").click()
            expect(a.locator(".inbox")).to_contain_text("signed in")
            a.get_by_label("A: room (empty: everyone)").fill("payroll")
            a.get_by_label("A: message").fill("not mine")
            a.locator("button[data-action='send']").click()
            expect(a.locator(".inbox")).to_contain_text("forbidden")
            browser.close()
    replies = [json.loads(f) for f in feed if '"kind": "reply"' in f or '"kind":"reply"' in f]
    [token] = [r["token"] for r in replies if "token" in r]
    assert token.count(".") == 2
    assert [f for f in feed if token in f and '"token"' not in f] == []
    assert not problems, problems


# What must stay on one line: keys, each attribute of a row, numbers and times.
ONE_LINE = [
    "#table-rows td.key",
    "#table-rows .pair",
    "#table-rows td:last-child",
    "#connections td.key",
    "#invocations tr[data-route] td:not(:nth-child(4))",
    "#fanouts .nums > span",
    "#routes li",
]
LINES = """(selector) => [...document.querySelectorAll(selector)].map((node) => {
    // The lines its text sits on: tops of its text's boxes, apart by more than half a line.
    const tops = [];
    const walker = document.createTreeWalker(node, NodeFilter.SHOW_TEXT);
    while (walker.nextNode()) {
        const range = document.createRange();
        range.selectNodeContents(walker.currentNode);
        for (const rect of range.getClientRects()) if (rect.width > 0) tops.push(rect.top);
    }
    tops.sort((a, b) => a - b);
    const lines = tops.filter((top, i) => i === 0 || top - tops[i - 1] > 8).length;
    return [node.textContent, lines];
})"""

# Whether the table holding ``selector`` is no wider than the box it scrolls in.
FITS = """(selector) => {
    const table = document.querySelector(selector).closest("table");
    return table.scrollWidth <= table.parentElement.clientWidth;
}"""


def test_console_after_a_busy_run() -> None:
    """History on, clients in two rooms, a send with an idempotency key, a publish, a drop
    and a resume: long keys are cut (whole on hover), numbers and times keep to one line,
    the history reply reads as one, and gsi_query shows no SQS worker. The picture is the
    README's."""
    from playwright.sync_api import expect, sync_playwright
    from websockets.sync.client import connect

    command = ("serve", "--port", "0", "--management-port", "0", "--dynamodb-port", "0")
    problems: list[str] = []
    for url in started(*command, "--history", "600"):
        with sync_playwright() as playwright:
            browser, page = open_page(playwright, problems)
            page.goto(url)
            expect(page.locator("#feed-state")).to_have_text("live")
            for rooms, reconnect in (("lobby", False), ("lobby, ops", False), ("lobby", True)):
                page.locator("#open-rooms").fill(rooms)
                page.locator("#open-reconnect").set_checked(reconnect)
                page.locator("#open-client").click()
            a, b, c = (page.locator(f"[data-client='{name}']") for name in "ABC")
            for client in (a, b, c):
                expect(client.locator(".status")).to_have_text("open")
            for client, name, room, text in (
                (a, "A", "lobby", "hi lobby"),
                (b, "B", "ops", "ops!"),
            ):
                client.get_by_label(f"{name}: room (empty: everyone)").fill(room)
                client.get_by_label(f"{name}: message").fill(text)
                client.locator("button[data-action='send']").click()
                expect(client.locator(".inbox")).to_contain_text(text)
            # A client of another kind sends with an idempotency key, twice: one fan-out.
            ws_url = f"ws://{urlsplit(url).netloc}/local?room=lobby"
            with connect(ws_url) as outside:
                once = {"action": "sendMessage", "room": "lobby", "text": "once", "id": "order-42"}
                for _ in range(2):
                    outside.send(json.dumps(once))
                expect(a.locator(".inbox li", has_text="once")).to_have_count(1)
                # C drops; a publish meets its 410; C comes back and resumes (whether the
                # publish came before its return or after, its inbox has it once).
                c.locator("button[data-action='drop']").click()
                page.locator("#publish-to").select_option("room")
                page.locator("#publish-value").fill("lobby")
                page.locator("#publish-data").fill('{"text": "while C was away"}')
                page.locator("#publish-send").click()
                expect(page.locator("#publish-result")).to_contain_text("gone 1")
                expect(c.locator(".inbox li", has_text="while C was away")).to_have_count(1)
                replies = page.locator("#fanouts li[data-kind='history']")
                expect(replies).to_have_count(1)
                # The other client asks the room's history from the start: all 3 frames.
                outside.send(json.dumps({"action": "history", "room": "lobby", "since": 0}))
                while json.loads(outside.recv(timeout=15)).get("event") != "history.end":
                    pass
            expect(replies).to_have_count(2)
            expect(replies.first).to_contain_text("history reply")
            expect(replies.first).to_contain_text("replayed 3 frames")
            expect(replies.first).to_contain_text("then history.end")
            expect(replies.first).not_to_contain_text("audience")
            expect(page.locator("#fanouts li", has_text="duplicate")).to_have_count(1)
            expect(page.locator("#workers-part")).to_be_hidden()

            # A long key is cut, whole in its title (the page's clients' sends have keys of
            # their own, a UUID each: this one is the outside client's).
            dedup = page.locator("#table-rows td.key[title^='DEDUP#'][title$='#order-42']")
            expect(dedup).to_have_count(1)
            expect(dedup).to_be_visible()
            whole = dedup.get_attribute("title") or ""
            assert whole.startswith("DEDUP#ROOM#lobby#")
            assert len(dedup.inner_text()) < len(whole)
            # Each invocation's metrics on a row under it; the columns stay in the panel.
            sent = page.locator("#invocations tr[data-route='sendMessage'] + tr.metrics")
            expect(sent.filter(has_text="Delivered").first).to_contain_text("PostLatency")
            assert page.evaluate(FITS, "#invocations"), "the invocations overflow their panel"
            for selector in ONE_LINE:
                measured: list[tuple[str, int]] = page.evaluate(LINES, selector)
                assert measured, f"nothing matches {selector}"
                wrapped = [text for text, lines in measured if lines > 1]
                assert not wrapped, f"{selector} wraps: {wrapped}"
            page.evaluate("window.scrollTo(0, 0)")
            page.wait_for_timeout(1000)  # let the highlights fade before the picture
            page.screenshot(path=str(SCREENSHOT), full_page=True)
            browser.close()
    assert not problems, problems


def focus_by_tab(page: Any, element_id: str, presses: int = 40) -> None:
    """Tab until ``element_id`` has the focus, as a keyboard user would."""
    for _ in range(presses):
        if page.evaluate("document.activeElement && document.activeElement.id") == element_id:
            return
        page.keyboard.press("Tab")
    pytest.fail(f"#{element_id} cannot be reached with Tab")
