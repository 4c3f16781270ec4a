"""Local DynamoDB and SQS servers on 127.0.0.1: dynalite and moto server.

The tests and the benchmarks start them from here; no handler imports this module. dynalite
comes from ``node_modules`` (``npm ci``, which ``make test`` runs), found from the working
directory upward or at the root of the checkout this package sits in.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# dynalite minus its crash when a client hangs up mid-request.
DYNALITE_SERVER = Path(__file__).with_name("dynalite.js")
_CHECKOUT = Path(__file__).resolve().parents[2]


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


def node_modules() -> Path:
    """The ``node_modules`` that holds dynalite, or a RuntimeError saying how to install it."""
    cwd = Path.cwd().resolve()
    places = [*(d / "node_modules" for d in (cwd, *cwd.parents)), _CHECKOUT / "node_modules"]
    for place in places:
        if (place / "dynalite" / "package.json").is_file():
            return place
    raise RuntimeError(
        f"dynalite is not installed: no node_modules/dynalite in {cwd}, its parents or "
        f"{_CHECKOUT}; run `make test` (it runs `npm ci`) or `npm ci` in the repository"
    )


# Every dynalite this process started, by URL: a caller asks whether it still runs, so that a
# crash fails the next step with dynalite's own last words instead of "connection refused".
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
    modules = node_modules()
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
            # The script may sit in site-packages, away from the node_modules it needs.
            env={**os.environ, "NODE_PATH": str(modules)},
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
