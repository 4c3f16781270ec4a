"""Local DynamoDB backends the tests start by themselves: moto server and dynalite.

A backend that cannot start fails the run; it never skips. ``Backend`` is where a test's
table lives; the ``backend`` fixture (tests/conftest.py) hands out one of ``BACKENDS``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fanout_core.config import FanoutConfig

ROOT = Path(__file__).resolve().parents[2]
DYNALITE = ROOT / "node_modules" / "dynalite" / "package.json"
DYNALITE_SERVER = Path(__file__).with_name("dynalite.js")  # dynalite minus its abort crash


BACKENDS = ["moto", "moto_server", "dynalite"]
SERVER_BACKENDS = {"moto_server", "dynalite"}  # a process of their own: the `server` marker
STRATEGIES = ["full_scan", "gsi_query", "parallel_scan", "sqs_batched"]


@dataclass(frozen=True)
class Backend:
    """Where a test's table lives: ``endpoint`` None means moto in-process."""

    name: str
    endpoint: str | None

    def config(self, **overrides: object) -> FanoutConfig:
        """A config for a new, uniquely named table on this backend."""
        values: dict[str, object] = {
            "table": f"t-{uuid.uuid4().hex[:12]}",
            "dynamodb_endpoint": self.endpoint,
        }
        values.update(overrides)
        return FanoutConfig(**values)  # type: ignore[arg-type]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, *, timeout: float = 20.0) -> None:
    """Block until 127.0.0.1:port accepts connections, or raise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@contextmanager
def moto_server() -> Iterator[str]:
    """A moto server on 127.0.0.1; yields its URL."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


# Every dynalite this run started, by URL: a fixture asks whether it still runs, so that a
# crash fails the next test with dynalite's own last words instead of "connection refused".
_DYNALITES: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}


def check_alive(url: str) -> None:
    """Raise with its exit code and stderr if the dynalite behind ``url`` has exited."""
    process, log = _DYNALITES[url]
    code = process.poll()
    if code is not None:
        tail = log.read_text(errors="replace")[-4000:]
        raise RuntimeError(f"dynalite at {url} exited with code {code}; its stderr:\n{tail}")


@contextmanager
def dynalite() -> Iterator[str]:
    """A dynalite process on 127.0.0.1 (in memory); yields its URL."""
    if not DYNALITE.exists():
        raise RuntimeError(f"{DYNALITE} is missing: run `make test` (it runs `npm ci`)")
    if shutil.which("node") is None:
        raise RuntimeError("dynalite needs Node.js, and `node` is not on PATH")
    port = free_port()
    # stderr goes to a file, not a pipe nobody reads: a full pipe would block dynalite.
    with tempfile.NamedTemporaryFile(prefix="dynalite-", suffix=".log", delete=False) as log_file:
        log = Path(log_file.name)
        process = subprocess.Popen(
            ["node", str(DYNALITE_SERVER), "127.0.0.1", str(port)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ},
        )
    url = f"http://127.0.0.1:{port}"
    _DYNALITES[url] = (process, log)
    try:
        try:
            wait_for_port(port)
        except RuntimeError:
            process.kill()
            process.wait(timeout=5)
            raise RuntimeError(
                f"dynalite did not start: {log.read_text(errors='replace')}"
            ) from None
        yield url
    finally:
        _DYNALITES.pop(url, None)
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.unlink(missing_ok=True)
