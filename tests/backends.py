"""Local DynamoDB backends the tests start by themselves: moto server and dynalite.

A backend that cannot start fails the run; it never skips.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DYNALITE = ROOT / "node_modules" / ".bin" / "dynalite"


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


@contextmanager
def dynalite() -> Iterator[str]:
    """A dynalite process on 127.0.0.1 (in memory); yields its URL."""
    if not DYNALITE.exists():
        raise RuntimeError(f"{DYNALITE} is missing: run `make test` (it runs `npm ci`)")
    if shutil.which("node") is None:
        raise RuntimeError("dynalite needs Node.js, and `node` is not on PATH")
    port = free_port()
    process = subprocess.Popen(
        [str(DYNALITE), "--host", "127.0.0.1", "--port", str(port), "--createTableMs", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ},
    )
    try:
        try:
            wait_for_port(port)
        except RuntimeError:
            process.kill()
            _, err = process.communicate(timeout=5)
            raise RuntimeError(f"dynalite did not start: {err.decode(errors='replace')}") from None
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()
