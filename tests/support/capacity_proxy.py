"""An HTTP proxy in front of a DynamoDB server that records what each call asked and what the
server answered: the consumed capacity as it crossed the wire, read apart from the library."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Call:
    """One DynamoDB call: its operation, request and answer bodies."""

    operation: str
    request: dict[str, Any]
    answer: dict[str, Any]

    @property
    def units(self) -> float:
        """The capacity units the server reported for it (0 when it reported none)."""
        consumed = self.answer.get("ConsumedCapacity")
        entries = consumed if isinstance(consumed, list) else [consumed]
        return sum(float(e.get("CapacityUnits", 0)) for e in entries if isinstance(e, dict))


@contextmanager
def capacity_proxy(upstream: str) -> Iterator[tuple[str, list[Call]]]:
    """``(url, calls)``: point a client at url; every call it makes lands in calls."""
    target = urlsplit(upstream)
    host, port = target.hostname or "127.0.0.1", target.port
    calls: list[Call] = []
    lock = threading.Lock()

    class Forward(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            connection = http.client.HTTPConnection(host, port, timeout=30)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            connection.request("POST", self.path, body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read()
            operation = self.headers.get("X-Amz-Target", "").rsplit(".", 1)[-1]
            with lock:
                calls.append(
                    Call(operation, json.loads(body or b"{}"), json.loads(answer or b"{}"))
                )
            self.send_response(response.status)
            for name, value in response.getheaders():
                if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)
            connection.close()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Forward)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", calls
    finally:
        server.shutdown()
        server.server_close()
