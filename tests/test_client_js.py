"""The JavaScript client package: its Node.js tests (node --test) against `fanout serve` on
real sockets, its types checked by `tsc --noEmit` against a typed example, and its version
tied to the Python package's.

Each test file under tests/js/ gets a `fanout serve` of its own settings (one per process:
the handlers read their settings from the environment). Node.js 20 has no global WebSocket
without `--experimental-websocket`; the tests run without it and pass the `ws` package's.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import tempfile
import textwrap
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fanout_core.local.serve import LocalDeployment
from tests.support.backends import STRATEGIES

pytestmark = pytest.mark.server

ROOT = Path(__file__).resolve().parent.parent
JS = ROOT / "tests" / "js"
PACKAGE = ROOT / "fanout_core" / "client"
HISTORY = {"FANOUT_HISTORY_SECONDS": "600"}


def node() -> str:
    binary = shutil.which("node")
    assert binary is not None, "Node.js is needed (make test installs dynalite with it)"
    return binary


async def node_tests(
    name: str, deployment: LocalDeployment, *, only: str | None = None, **env: str
) -> str:
    """Run tests/js/NAME.test.mjs against ``deployment`` (``only``: the tests whose name
    matches it); its report, or fail with it if a test fails."""
    pattern = [] if only is None else [f"--test-name-pattern={only}"]
    process = await asyncio.create_subprocess_exec(
        node(),
        "--test",
        "--test-reporter=spec",
        *pattern,
        str(JS / f"{name}.test.mjs"),
        cwd=ROOT,
        env={**os.environ, "FANOUT_WS": deployment.ws_url, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    report = output.decode(errors="replace")
    assert process.returncode == 0, report
    assert re.search(r"\bfail 0\b", report), report
    assert not re.search(r"\bpass 0\b", report), report
    return report


def run(
    name: str, make: Callable[[], LocalDeployment], *, only: str | None = None, **env: str
) -> str:
    async def scenario() -> str:
        async with make() as deployment:
            return await node_tests(name, deployment, only=only, **env)

    return asyncio.run(asyncio.wait_for(scenario(), 150))


def test_reconnect_resume_and_the_offline_queue() -> None:
    run("client", lambda: LocalDeployment(port=0, settings=HISTORY, table="js-client"))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_quiet_member_misses_nothing_on_every_strategy(strategy: str) -> None:
    """Joined, received nothing, dropped while 5 are published, reconnected: all 5 come
    through history, in order, once (client.test.mjs's quiet member), on each strategy."""
    report = run(
        "client",
        lambda: LocalDeployment(
            port=0, strategy=strategy, settings=HISTORY, table=f"js-quiet-{strategy}"
        ),
        only="a quiet member",
    )
    assert re.search(r"\bpass 1\b", report), report
    assert "a quiet member, dropped while 5 are published, gets all 5" in report, report


def test_keep_alive_and_the_two_hour_cut() -> None:
    # API Gateway's 10 minutes and 2 hours, scaled down: the same code paths, in seconds.
    run(
        "lifetime",
        lambda: LocalDeployment(
            port=0, settings=HISTORY, table="js-lifetime", idle_timeout=1.5, max_lifetime=4.0
        ),
    )


def test_a_refresh_waits_for_a_slow_resume_and_loses_no_send() -> None:
    """History answered in 1.3 s, after the next refresh is due (maxConnectionAge 1 s): the
    client opens its new connection once the answer came, and keeps the old one open while
    the sends made on it are handled. Every frame comes, once, in order."""
    refresh_on("tests.support.slow_history", table="js-slow-resume")


def test_a_post_that_meets_a_connect_in_progress_deletes_nothing() -> None:
    """A fan-out that posts to the next connection of a refresh while its $connect is still
    answering meets a 410 (API Gateway's, and the local one's): its rows must stay, or the
    new connection's resume is refused and the client asks again on yet another one."""
    refresh_on("tests.support.slow_connect", table="js-slow-connect")


def refresh_on(handlers: str, *, table: str) -> None:
    """The refresh before the lifetime cut passes on ``handlers``, with history on."""
    report = run(
        "lifetime",
        lambda: LocalDeployment(
            port=0,
            settings=HISTORY,
            table=table,
            idle_timeout=1.5,
            max_lifetime=4.0,
            handlers=handlers,
        ),
        only="before the lifetime cut",
    )
    assert re.search(r"\bpass 1\b", report), report


def test_the_token_on_every_connect() -> None:
    """Signed in through the JWT authorizer (`fanout serve --dev-auth`'s issuer), by the
    query string and by the subprotocol, with a token function called at every connect."""
    from fanout_core.local.issuer import DevIssuer

    async def scenario() -> None:
        deployment = LocalDeployment(
            port=0, settings=HISTORY, table="js-token", dev_issuer=DevIssuer.generate()
        )
        async with deployment:
            tokens = [deployment.mint(f"user-{n}", []) for n in range(1, 5)]
            await node_tests("token", deployment, FANOUT_TOKENS=json.dumps(tokens))

    asyncio.run(asyncio.wait_for(scenario(), 150))


# A ```js block of the README or a doc, and the lines it says it prints.
BLOCK = re.compile(r"^( *)```js\n(.*?)^\1```", re.S | re.M)
PRINTS = re.compile(r"^// prints: (.*)$", re.M)
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# `fanout serve`'s URLs, as the examples write them: its WebSocket API, its POST /publish.
SERVED = "ws://127.0.0.1:8765/local"
PUBLISH = "http://127.0.0.1:8766/publish"


def examples() -> list[tuple[str, str]]:
    """(where, code) of every JavaScript example of the README and the docs."""
    found = []
    for doc in DOCS:
        for number, match in enumerate(BLOCK.finditer(doc.read_text()), 1):
            code = textwrap.dedent(match.group(2))
            found.append((f"{doc.relative_to(ROOT)} #{number}", code))
    return found


def test_the_docs_javascript_examples_run_as_written() -> None:
    found = examples()
    assert {where.split(" ")[0] for where, _ in found} >= {"README.md", "docs/client.md"}

    # POST /publish signed with the shell's keys (docs/publish.md signs with them).
    keys = {os.environ["AWS_ACCESS_KEY_ID"]: os.environ["AWS_SECRET_ACCESS_KEY"]}

    async def scenario() -> None:
        async with LocalDeployment(
            port=0, settings=HISTORY, table="js-docs", publish_credentials=keys
        ) as deployment:
            for where, code in found:
                await run_example(where, code, deployment)

    asyncio.run(asyncio.wait_for(scenario(), 150))


async def run_example(where: str, code: str, deployment: LocalDeployment) -> None:
    """Run one example with Node.js against ``deployment``: it exits 0, printing its lines."""
    expected = PRINTS.findall(code)
    assert expected, f"{where} says nothing of what it prints (// prints: ...)"
    with tempfile.TemporaryDirectory(dir=JS) as folder:  # in the tree: node_modules resolves
        script = Path(folder) / "example.mjs"
        script.write_text(
            code.replace(SERVED, deployment.ws_url).replace(PUBLISH, deployment.publish_url)
        )
        process = await asyncio.create_subprocess_exec(
            node(),
            str(script),
            cwd=ROOT,
            env={**os.environ, "FANOUT_TOKEN": "a.signed.token"},  # no authorizer checks it
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(), 30)
        except TimeoutError:
            process.kill()
            raise AssertionError(f"{where} did not end") from None
    assert process.returncode == 0, f"{where}: {err.decode()}"
    assert out.decode().splitlines() == expected, where


def test_the_types_check_against_a_typed_example() -> None:
    tsc = ROOT / "node_modules" / ".bin" / "tsc"
    assert tsc.exists(), "make test installs typescript from package.json"
    check = subprocess.run(
        [str(tsc), "--noEmit", "-p", str(JS / "tsconfig.json")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    # The check can fail: a misuse of the API is a type error.
    broken = JS / "broken.ts"
    broken.write_text(
        'import { FanoutClient } from "fanout-core-client";\n'
        'new FanoutClient("wss://x").on("message", (m) => m.seq.toFixed());\n'
        'new FanoutClient("wss://x", { tokenTransport: "header" });\n'
    )
    try:
        failed = subprocess.run(
            [str(tsc), "--noEmit", "-p", str(JS / "tsconfig.broken.json")],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        broken.unlink()
    assert failed.returncode != 0
    assert "possibly 'undefined'" in failed.stdout, failed.stdout
    assert '"header"' in failed.stdout, failed.stdout


def test_the_package_version_is_the_python_packages() -> None:
    manifest: dict[str, Any] = json.loads((PACKAGE / "package.json").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert manifest["version"] == project["version"]
    assert manifest["type"] == "module"
    exported = manifest["exports"]["."]
    for path in (exported["types"], exported["default"], *manifest["files"]):
        assert (PACKAGE / path).is_file(), path
