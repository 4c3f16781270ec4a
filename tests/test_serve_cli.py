"""`fanout serve` as a newcomer meets it: the same `export` line on every run, the shell's
credentials never printed nor needed, and a taken port named in one line."""

from __future__ import annotations

import asyncio
import os
import queue
import re
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from tests.support import emf_spec, frames

pytestmark = pytest.mark.server  # each runs `fanout serve`: moto, the APIs, real sockets

SHELL_SECRET = "shell-secret-never-printed"


def shell_env(**extra: str) -> dict[str, str]:
    """A shell with AWS credentials of its own and no fanout settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FANOUT_"))}
    env.update(
        AWS_ACCESS_KEY_ID="AKIASHELLOWNKEY",
        AWS_SECRET_ACCESS_KEY=SHELL_SECRET,
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
    )
    env.update(extra)
    return env


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@contextmanager
def serving(*args: str) -> Iterator[str]:
    """`fanout serve ARGS` until it prints `ready`; yields what it printed."""
    with serving_lines(*args) as (printed, _):
        yield printed


@contextmanager
def serving_lines(*args: str) -> Iterator[tuple[str, queue.Queue[str | None]]]:
    """`fanout serve ARGS` until it prints `ready`; yields what it printed and the lines it
    prints after (None once it ended)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "fanout_core.cli", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=shell_env(),
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    printed = ""
    try:
        while not printed.endswith("ready\n"):
            line = lines.get(timeout=60)
            assert line is not None, f"fanout serve ended: {printed}"
            printed += line
        yield printed, lines
    finally:
        process.terminate()
        process.wait(timeout=20)
        reader.join(timeout=20)
        assert process.stdout is not None
        process.stdout.close()


def export_line(printed: str) -> str:
    match = re.search(r"^  export (.*)$", printed, re.MULTILINE)
    assert match is not None, printed
    return match.group(1)


async def receive_one(ws_url: str, publish: list[str], env: dict[str, str]) -> dict[str, object]:
    async with connect(f"{ws_url}?room=lobby") as ws:
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "fanout_core.cli", "publish", *publish],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        async with asyncio.timeout(15):
            got: dict[str, object] = frames.decode(await ws.recv())
            return got


def test_two_runs_print_the_same_export_line_and_the_env_file_publishes(tmp_path: Path) -> None:
    management, dynamodb = free_ports(2)
    env_file = tmp_path / "local.env"
    args = ["--port", "0", "--management-port", str(management), "--dynamodb-port", str(dynamodb)]
    args += ["--strategy", "sqs_batched", "--env-file", str(env_file)]
    with serving(*args) as first:
        assert SHELL_SECRET not in first
        exported = dict(word.split("=", 1) for word in export_line(first).split())
        assert exported["AWS_ENDPOINT_URL_DYNAMODB"] == f"http://127.0.0.1:{dynamodb}"
        assert exported["AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI"].startswith(
            f"http://127.0.0.1:{management}/"
        )
        assert exported["AWS_SECRET_ACCESS_KEY"] == "local"  # never the shell's own
        assert "hides" in first or "hidden" in first  # and it says what that does
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
        written = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
        assert written == exported
        # A shell with its own credentials publishes with the file, and keeps them.
        ws_url = re.search(r"WebSocket API:\s+(\S+)", first)
        assert ws_url is not None
        got = asyncio.run(
            receive_one(
                ws_url.group(1),
                ["--env-file", str(env_file), "--room", "lobby", "--data", '{"n": 1}'],
                shell_env(),
            )
        )
        assert got["data"] == {"n": 1}
    with serving(*args) as second:
        assert export_line(second) == export_line(first)


def test_metrics_prints_each_invocations_emf_document() -> None:
    args = ["--port", "0", "--management-port", "0", "--dynamodb-port", "0", "--no-console"]
    with serving_lines(*args, "--metrics") as (printed, lines):
        ws_url = re.search(r"WebSocket API:\s+(\S+)", printed)
        assert ws_url is not None

        async def chat() -> None:
            async with connect(f"{ws_url.group(1)}?room=lobby") as ws:
                await ws.send('{"action": "sendMessage", "room": "lobby", "text": "hi"}')
                async with asyncio.timeout(15):
                    assert frames.decode(await ws.recv())["body"] == "hi"

        asyncio.run(chat())
        documents: dict[str, dict[str, object]] = {}
        while "send_message" not in documents:
            line = lines.get(timeout=30)
            assert line is not None, "fanout serve ended"
            if line.startswith('{"_aws"'):
                document = emf_spec.check(line.rstrip("\n"))  # valid EMF, as on Lambda
                documents[str(document["Source"])] = emf_spec.metrics_of(document)
        assert documents["connect"]["Connects"] == 1
        assert documents["send_message"]["Delivered"] == 1


def test_a_taken_port_is_one_line_naming_its_option() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for option in ("--dynamodb-port", "--management-port", "--port"):
            ports = {"--port": "0", "--management-port": "0", "--dynamodb-port": "0"}
            ports[option] = str(port)
            done = subprocess.run(
                [sys.executable, "-m", "fanout_core.cli", "serve"]
                + [word for pair in ports.items() for word in pair],
                env=shell_env(),
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert done.returncode == 2, done.stderr
            assert "Traceback" not in done.stderr
            assert done.stderr.splitlines() == [
                f"fanout: port {port} on 127.0.0.1 is taken ({option}): is another "
                f"`fanout serve` running? Stop it, or pass {option} with another port "
                "(0: any free)"
            ]
