"""The local Management API in a process of its own, so the client measured has its own GIL.

``python -m benchmarks.mgmt_server LATENCY COUNT`` opens COUNT benchmark connection ids,
prints its URL, and answers until its standard input closes; then it prints its counters.

``--fast --processes N`` answers with a lean server instead, in N processes sharing one port
(``SO_REUSEPORT``), for measuring a client faster than ``LocalManagementApi`` can answer: the
same answers to a post (200 after LATENCY for an open id, 410 GoneException otherwise), no
faults, no signature check, no other method. ``stats`` then also reports the server
processes' CPU seconds, to show that they were not the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import mmap
import os
import signal
import socket
import struct
import sys
import time
from urllib.parse import quote

from benchmarks.common import bench_id
from fanout_core.local.management_api import LocalManagementApi

_OK = b"HTTP/1.1 200 OK\r\nx-amzn-RequestId: fast\r\nContent-Length: 0\r\n\r\n"
_GONE_BODY = b'{"message": null}'
_GONE = (
    b"HTTP/1.1 410 Gone\r\nx-amzn-ErrorType: GoneException\r\nContent-Type: application/json"
    b"\r\nx-amzn-RequestId: fast\r\nContent-Length: %d\r\n\r\n" % len(_GONE_BODY) + _GONE_BODY
)
_SLOT = struct.Struct("qd")  # posts answered, CPU seconds: one slot per process


class _FastProtocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive, POST only: each answer is sent LATENCY after its request."""

    def __init__(self, server: _FastServer) -> None:
        self.server = server
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data
        while (end := buffer.find(b"\r\n\r\n")) >= 0:
            head = buffer[:end]
            at = head.lower().find(b"\r\ncontent-length:")
            stop = head.find(b"\r\n", at + 2) if at >= 0 else -1
            length = int(head[at + 17 : stop if stop >= 0 else len(head)]) if at >= 0 else 0
            if len(buffer) < end + 4 + length:
                break
            buffer = buffer[end + 4 + length :]
            target = head[: head.find(b"\r\n")].split(b" ")[1]
            answer = _OK if target.rpartition(b"/")[2] in self.server.ids else _GONE
            self.server.loop.call_later(self.server.latency, self._answer, answer)
        self.buffer = buffer

    def _answer(self, answer: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(answer)
            self.server.posts += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


class _FastServer:
    def __init__(self, latency: float, count: int, slots: mmap.mmap, index: int) -> None:
        self.latency = latency
        self.ids = {quote(bench_id(i), safe="-._~").encode() for i in range(count)}
        self.posts = 0
        self.slots = slots
        self.index = index
        self.loop = asyncio.new_event_loop()

    def serve(self, sock: socket.socket) -> None:
        async def main() -> None:
            await self.loop.create_server(lambda: _FastProtocol(self), sock=sock)
            while True:
                # Counters for the parent's ``stats``, every 20 ms: the CPU of this process.
                _SLOT.pack_into(
                    self.slots, self.index * _SLOT.size, self.posts, time.process_time()
                )
                await asyncio.sleep(0.02)

        self.loop.run_until_complete(main())


def _listener(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    return sock


def fast(latency: float, count: int, processes: int) -> None:
    """Serve from ``processes`` forked processes, each accepting on its own socket."""
    slots = mmap.mmap(-1, _SLOT.size * processes)
    sockets = [_listener(0)]
    port = sockets[0].getsockname()[1]
    sockets += [_listener(port) for _ in range(processes - 1)]
    children = []
    for index, sock in enumerate(sockets):
        pid = os.fork()
        if pid == 0:  # a server: it ends when the parent kills it
            for other in sockets:
                if other is not sock:
                    other.close()
            _FastServer(latency, count, slots, index).serve(sock)
            os._exit(0)
        children.append(pid)
    for sock in sockets:
        sock.close()
    try:
        print(f"http://127.0.0.1:{port}", flush=True)
        for line in sys.stdin:
            if line.strip() == "stats":
                counters = [_SLOT.unpack_from(slots, i * _SLOT.size) for i in range(processes)]
                stats = {
                    "posts": sum(posts for posts, _ in counters),
                    "cpu_seconds": [cpu for _, cpu in counters],
                    "processes": processes,
                }
                print(json.dumps(stats), flush=True)
    finally:
        for pid in children:
            os.kill(pid, signal.SIGTERM)
        for pid in children:
            os.waitpid(pid, 0)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mgmt_server")
    parser.add_argument("latency", type=float)
    parser.add_argument("count", type=int)
    parser.add_argument("--fast", action="store_true", help="the lean server (posts only)")
    parser.add_argument("--processes", type=int, default=1, help="with --fast: how many")
    args = parser.parse_args()
    if args.fast:
        fast(args.latency, args.count, args.processes)
        return
    with LocalManagementApi() as api:
        api.faults.latency = args.latency
        for i in range(args.count):
            api.connections.open(bench_id(i))
        print(api.url, flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "stats":
                stats = {"posts": api.total("POST"), "max_in_flight": api.max_in_flight}
                print(json.dumps(stats), flush=True)
            elif command.startswith("latency "):
                api.faults.latency = float(command.split()[1])
                print("ok", flush=True)


if __name__ == "__main__":
    main()
