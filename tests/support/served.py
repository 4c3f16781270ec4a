"""`fanout serve` in a process of its own, as a developer runs it: what its banner says."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FREE_PORTS = ("--port", "0", "--management-port", "0", "--dynamodb-port", "0")


@dataclass
class Served:
    """A running ``fanout`` command: its process and its banner's ``name: value`` lines."""

    process: subprocess.Popen[str]
    banner: dict[str, str]
    output: list[str]

    @property
    def ws_url(self) -> str:
        return self.banner["WebSocket API"]

    def running(self) -> bool:
        return self.process.poll() is None


def served(*command: str, timeout: float = 60) -> Iterator[Served]:
    """Run ``fanout COMMAND`` (from the repository, so ``tests.support`` imports) until it
    says ``ready``; yield it; stop it after."""
    process = subprocess.Popen(
        [sys.executable, "-m", "fanout_core.cli", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )
    assert process.stdout is not None
    banner: dict[str, str] = {}
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    for line in process.stdout:
        lines.append(line)
        if match := re.match(r"([A-Za-z ]+):\s+(\S+)$", line.rstrip()):
            banner.setdefault(match.group(1), match.group(2))
        if line.strip() == "ready" or time.monotonic() > deadline:
            break
    # Read on, so that a server that logs much never blocks on a full pipe.
    reader = threading.Thread(target=lines.extend, args=(process.stdout,), daemon=True)
    reader.start()
    try:
        assert "ready" in (line.strip() for line in lines), "".join(lines)
        yield Served(process, banner, lines)
    finally:
        process.terminate()
        process.wait(15)
        reader.join(5)
        process.stdout.close()
