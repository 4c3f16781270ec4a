"""Load on real sockets: many ``websockets`` clients on ``fanout serve``, with churn.

``python -m benchmarks.load [--clients 1000] [--seconds 180]`` (``make bench-load``) starts
``fanout serve`` (dynalite behind it, ``benchmarks.load_handlers`` in front: a socket that
dies without a close frame gets no ``$disconnect``) and, from this one asyncio process:

- *steady* clients connect, join ``--rooms-per-client`` of ``--rooms`` rooms and stay;
- *churning* clients (``--churn`` of them) connect, join 1 to 3 rooms, stay a few seconds,
  drop the TCP connection without a close frame, and connect again;
- ``--rate`` messages a second go to a random room, sent over its socket by a steady member.

A join counts once the server answered a frame sent after it (the gateway handles a
socket's frames in order). A member joined before a message was sent, and not dropped
within ``--life`` seconds after, must receive it: anything else is a missed frame. At the
end the steady clients leave but one, which sends to everyone (the dropped connections'
rows answer 410 and are deleted), then leaves: the table must be empty. The server's RSS is
sampled each second. Results: ``benchmarks/results/load.md`` and ``load.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
CONNECTS_AT_ONCE = 50  # handshakes in flight while the clients ramp up


@dataclass
class Session:
    """One connection of a client: when it joined which rooms, when it dropped."""

    client: int
    steady: bool
    rooms: tuple[str, ...]
    joined_at: float | None = None  # when the server had answered after the joins
    dropped_at: float | None = None
    received: dict[int, float] = field(default_factory=dict)  # message number -> when
    duplicates: int = 0


@dataclass
class Sent:
    number: int
    room: str | None
    at: float


@dataclass
class Load:
    """What the clients saw."""

    sessions: list[Session] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)
    connect_failures: int = 0
    send_failures: int = 0
    errors: list[str] = field(default_factory=list)


# -- the server ------------------------------------------------------------------------------


class Server:
    """``fanout serve`` in its own process; its banner parsed, its RSS sampled."""

    def __init__(self, dynamodb: str, strategy: str, handlers: str) -> None:
        script = Path(sys.executable).parent / "fanout"
        command = [str(script)] if script.exists() else [sys.executable, "-m", "fanout_core.cli"]
        command += ["serve", "--port", "0", "--management-port", "0"]
        command += ["--dynamodb-endpoint", dynamodb]
        command += ["--strategy", strategy, "--handlers", handlers]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT
        )
        self.banner: dict[str, str] = {}
        self.log: list[str] = []
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.log.append(line.rstrip())
            name, _, value = line.partition(":")
            if value:
                self.banner.setdefault(name.strip(), value.strip())
            if line.strip() == "ready":
                break
        else:
            raise RuntimeError("fanout serve exited:\n" + "\n".join(self.log[-40:]))
        # Keep reading, so a full pipe never blocks the server's logging.
        threading.Thread(target=self._drain, daemon=True).start()
        self.rss: list[tuple[float, int]] = []  # (seconds, KiB)
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _drain(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.log.append(line.rstrip())
            del self.log[:-200]

    def _sample(self) -> None:
        status = Path(f"/proc/{self.process.pid}/status")
        while not self._stop.is_set():
            with contextlib.suppress(OSError, ValueError):
                for line in status.read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        self.rss.append((time.monotonic(), int(line.split()[1])))
            self._stop.wait(1.0)

    @property
    def url(self) -> str:
        return self.banner["WebSocket API"]

    def stop(self) -> None:
        self._stop.set()
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def count_rows(endpoint: str, table: str) -> int:
    """Items in the table, read consistently."""
    import boto3

    client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    count, start = 0, None
    while True:
        kwargs: dict[str, Any] = {"TableName": table, "Select": "COUNT", "ConsistentRead": True}
        if start:
            kwargs["ExclusiveStartKey"] = start
        page = client.scan(**kwargs)
        count += page["Count"]
        start = page.get("LastEvaluatedKey")
        if not start:
            return count


# -- the clients ------------------------------------------------------------------------------


class Clients:
    """Every client of the run, on this process's event loop."""

    def __init__(self, args: argparse.Namespace, url: str, rows: Callable[[], int]) -> None:
        self.args = args
        self.rows = rows  # the table's item count, read consistently (blocking)
        self.stale_rows = -1  # rows of dropped connections before the send to everyone
        self.url = url
        self.load = Load()
        self.rooms = [f"load-{i:03d}" for i in range(args.rooms)]
        self.random = random.Random(args.seed)
        self.stopping = asyncio.Event()
        self.connecting = asyncio.Semaphore(CONNECTS_AT_ONCE)
        self.sockets: dict[int, Any] = {}  # steady client -> its socket
        self.steady_members: dict[str, list[int]] = {room: [] for room in self.rooms}
        self.numbers = iter(range(1, 1 << 31))

    async def open(self, session: Session) -> tuple[Any, asyncio.Task[None]]:
        """Connect, join the session's rooms, and wait for the server to have done so."""
        from websockets.asyncio.client import connect

        async with self.connecting:
            socket = await connect(self.url, ping_interval=None, open_timeout=60, max_queue=None)
        answered = asyncio.Event()
        reader = asyncio.create_task(self.read(socket, session, answered))
        for room in session.rooms:
            await socket.send(json.dumps({"action": "joinRoom", "room": room}))
        # An unknown action: its error answer comes after the joins' handling, in order.
        await socket.send(json.dumps({"action": "loadBarrier"}))
        await asyncio.wait_for(answered.wait(), 60)
        session.joined_at = time.monotonic()
        self.load.sessions.append(session)
        return socket, reader

    async def read(self, socket: Any, session: Session, answered: asyncio.Event) -> None:
        with contextlib.suppress(Exception):
            async for raw in socket:
                now = time.monotonic()
                frame = json.loads(raw)
                if "error" in frame:
                    answered.set()
                    continue
                number = int(str(frame.get("body", "0")).split(":")[0])
                if number in session.received:
                    session.duplicates += 1
                else:
                    session.received[number] = now

    async def steady(self, client: int) -> None:
        rooms = tuple(self.random.sample(self.rooms, self.args.rooms_per_client))
        session = Session(client, True, rooms)
        try:
            socket, _ = await self.open(session)
        except Exception as error:
            self.load.connect_failures += 1
            self.load.errors.append(f"steady {client}: {error!r}")
            return
        self.sockets[client] = socket
        for room in rooms:
            self.steady_members[room].append(client)

    async def churn(self, client: int) -> None:
        await asyncio.sleep(self.random.uniform(0, self.args.stay_max))
        while not self.stopping.is_set():
            rooms = tuple(self.random.sample(self.rooms, self.random.randint(1, 3)))
            session = Session(client, False, rooms)
            try:
                socket, reader = await self.open(session)
            except Exception as error:
                self.load.connect_failures += 1
                self.load.errors.append(f"churn {client}: {error!r}")
                await asyncio.sleep(1)
                continue
            with contextlib.suppress(TimeoutError):
                stay = self.random.uniform(self.args.stay_min, self.args.stay_max)
                await asyncio.wait_for(self.stopping.wait(), stay)
            session.dropped_at = time.monotonic()
            socket.transport.abort()  # no close frame: the server sees the TCP connection die
            reader.cancel()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), self.random.uniform(0.5, 2.0))

    async def send(self, room: str | None, sender: int) -> None:
        number = next(self.numbers)
        body: dict[str, Any] = {"action": "sendMessage", "text": f"{number}:load"}
        if room is not None:
            body["room"] = room
        sent = Sent(number, room, time.monotonic())
        try:
            await self.sockets[sender].send(json.dumps(body))
        except Exception as error:
            self.load.send_failures += 1
            self.load.errors.append(f"send {number}: {error!r}")
            return
        self.load.sent.append(sent)

    async def publish(self, until: float) -> None:
        interval = 1 / self.args.rate
        at = time.monotonic()
        while at < until:
            room = self.random.choice(self.rooms)
            if self.steady_members[room]:
                await self.send(room, self.random.choice(self.steady_members[room]))
            at += interval
            await asyncio.sleep(max(0.0, at - time.monotonic()))

    async def run(self) -> dict[str, float]:
        """Ramp up, run, sweep, leave; the phases' times (monotonic)."""
        churners = int(self.args.clients * self.args.churn)
        steady = self.args.clients - churners
        times = {"start": time.monotonic()}
        await asyncio.gather(*(self.steady(i) for i in range(steady)))
        times["steady_joined"] = time.monotonic()
        churn_tasks = [asyncio.create_task(self.churn(steady + i)) for i in range(churners)]
        await self.publish(time.monotonic() + self.args.seconds)
        times["published"] = time.monotonic()
        self.stopping.set()
        await asyncio.gather(*churn_tasks)
        # Late frames of the last messages.
        await asyncio.sleep(self.args.life)
        times["steady_end"] = time.monotonic()
        if not self.sockets:
            return times
        # All but one steady client leave; what is left is the dropped connections' rows
        # (and the last client's). A send to everyone posts to them: 410, deleted.
        last, last_socket = next(iter(self.sockets.items()))
        for client, socket in self.sockets.items():
            if client != last:
                with contextlib.suppress(Exception):
                    await socket.close()
        rows = await self.settled_rows()
        last_rows = 1 + self.args.rooms_per_client
        self.stale_rows = rows - last_rows
        times["others_left"] = time.monotonic()
        # A 410 deletes only a connection older than FANOUT_CONNECTING_SECONDS (the server
        # reads the same environment): wait until the youngest dropped one is.
        from fanout_core.config import FanoutConfig

        born = [s.joined_at for s in self.load.sessions if s.dropped_at and s.joined_at]
        if born:
            grace = FanoutConfig.from_env().connecting_seconds
            await asyncio.sleep(max(0.0, max(born) + grace - time.monotonic()))
        await self.send(None, last)
        await asyncio.sleep(self.args.life)
        await last_socket.close()
        times["left"] = time.monotonic()
        return times

    async def settled_rows(self) -> int:
        """The table's item count once it stopped changing (``$disconnect``s done)."""
        rows, deadline = await asyncio.to_thread(self.rows), time.monotonic() + self.args.settle
        while time.monotonic() < deadline:
            await asyncio.sleep(1)
            now = await asyncio.to_thread(self.rows)
            if now == rows:
                break
            rows = now
        return rows


# -- the analysis ------------------------------------------------------------------------------


def percentile_ms(values: list[float], q: float) -> float | None:
    """The ``q`` quantile of ``values`` (seconds), in milliseconds."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


def analyse(load: Load, life: float) -> dict[str, Any]:
    """Missed frames, duplicates and delivery latency, from what every session saw."""
    by_room: dict[str | None, list[Session]] = {}
    for session in load.sessions:
        for room in session.rooms:
            by_room.setdefault(room, []).append(session)
    expected = missed = missed_steady = 0
    latencies: list[float] = []
    examples: list[str] = []
    sent_at = {s.number: s.at for s in load.sent}
    for message in load.sent:
        members = load.sessions if message.room is None else by_room.get(message.room, [])
        for session in members:
            at = session.received.get(message.number)
            if at is not None:
                latencies.append(at - sent_at[message.number])
            assert session.joined_at is not None
            live = session.joined_at < message.at and (
                session.dropped_at is None or session.dropped_at > message.at + life
            )
            if message.room is None or not live:
                continue
            expected += 1
            if at is None:
                missed += 1
                missed_steady += session.steady
                if len(examples) < 10:
                    who = f"client {session.client} (steady: {session.steady})"
                    examples.append(f"message {message.number} to {message.room}: {who}")
    return {
        "messages": len([m for m in load.sent if m.room is not None]),
        "sessions": len(load.sessions),
        "steady_sessions": sum(s.steady for s in load.sessions),
        "drops": sum(s.dropped_at is not None for s in load.sessions),
        "expected_deliveries": expected,
        "missed": missed,
        "missed_by_steady": missed_steady,
        "missed_examples": examples,
        "frames_received": sum(len(s.received) for s in load.sessions),
        "duplicates": sum(s.duplicates for s in load.sessions),
        "latency_p50_ms": percentile_ms(latencies, 0.5),
        "latency_p99_ms": percentile_ms(latencies, 0.99),
        "latency_max_ms": max(latencies) * 1000 if latencies else None,
        "connect_failures": load.connect_failures,
        "send_failures": load.send_failures,
        "errors": load.errors[:10],
    }


def memory(rss: list[tuple[float, int]], times: dict[str, float]) -> dict[str, Any]:
    """Peak RSS, and its growth from the steady clients' joins to the end of the churn."""
    during = [kib for t, kib in rss if times["steady_joined"] <= t <= times["steady_end"]]
    if not during:
        return {}
    tail = during[-10:]
    half = [(t, kib) for t, kib in rss if times["steady_joined"] <= t <= times["steady_end"]]
    half = half[len(half) // 2 :]
    slope = 0.0
    if len(half) >= 2:  # least squares, MiB a minute, over the second half of the run
        mean_t = statistics.fmean(t for t, _ in half)
        mean_k = statistics.fmean(k for _, k in half)
        num = sum((t - mean_t) * (k - mean_k) for t, k in half)
        den = sum((t - mean_t) ** 2 for t, _ in half)
        slope = num / den * 60 / 1024 if den else 0.0
    start = rss[0][0]
    return {
        "second_half_mib_per_minute": slope,
        "series_mib": [(round(t - start, 1), round(k / 1024, 1)) for t, k in rss[::5]],
        "rss_start_mib": during[0] / 1024,
        "rss_end_mib": statistics.median(tail) / 1024,
        "rss_peak_mib": max(kib for _, kib in rss) / 1024,
        "rss_growth_mib": (statistics.median(tail) - statistics.median(during[:10])) / 1024,
        "samples": len(rss),
    }


# -- the run ------------------------------------------------------------------------------------


@contextlib.contextmanager
def more_files(wanted: int) -> Iterator[int]:
    """Raise this process's open-file limit (the server inherits it); yields the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, target), hard))
    try:
        yield max(soft, target)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def run(args: argparse.Namespace) -> dict[str, Any]:
    for name, value in (("AWS_ACCESS_KEY_ID", "load"), ("AWS_SECRET_ACCESS_KEY", "load"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):  # fmt: skip
        os.environ.setdefault(name, value)
    from fanout_core.local import backends

    with more_files(4 * args.clients + 1024) as files, backends.dynalite() as dynamodb:
        server = Server(dynamodb, args.strategy, args.handlers)
        try:
            table = server.banner["table"]
            clients = Clients(args, server.url, functools.partial(count_rows, dynamodb, table))
            started = time.monotonic()
            times = asyncio.run(clients.run())
            rows, waited = count_rows(dynamodb, table), 0.0
            while rows and waited < args.settle:  # $disconnects still running
                time.sleep(1)
                waited += 1
                rows = count_rows(dynamodb, table)
            elapsed = time.monotonic() - started
        finally:
            server.stop()
    return {
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "open_files_limit": files,
        "seconds": elapsed,
        "phases": {k: v - times["start"] for k, v in times.items()},
        "rows_left": rows,
        "dropped_rows_before_sweep": clients.stale_rows,
        **analyse(clients.load, args.life),
        "memory": memory(server.rss, times),
        "machine": {"nproc": os.cpu_count(), "python": sys.version.split()[0]},
    }


def markdown(r: dict[str, Any]) -> str:
    s, m = r["settings"], r["memory"]

    def ms(value: float | None) -> str:
        return "n/a" if value is None else f"{value:,.0f} ms"

    lines = [
        "# Load on real sockets",
        "",
        f"`fanout serve` (strategy {s['strategy']}, dynalite) with {s['clients']:,} `websockets` "
        f"clients in one process for {s['seconds']:.0f} s: {1 - s['churn']:.0%} steady, "
        f"{s['churn']:.0%} churning (stay {s['stay_min']:.0f}-{s['stay_max']:.0f} s, drop "
        f"without a close frame, reconnect); {s['rate']:g} messages/s to {s['rooms']} rooms "
        f"(steady clients in {s['rooms_per_client']} each). {r['machine']['nproc']} cores, "
        "shared with other work while it ran. `python -m benchmarks.load` (`make bench-load`).",
        "",
        "| measure | value | must be |",
        "|---|---:|---|",
        f"| frames missed by a live member | {r['missed']:,} of {r['expected_deliveries']:,} | 0 |",
        f"| rows left after everyone left | {r['rows_left']:,} | 0 |",
        f"| rows of dropped connections before the send to everyone (410s) "
        f"| {r['dropped_rows_before_sweep']:,} | |",
        f"| peak RSS of the server | {m.get('rss_peak_mib', 0):,.0f} MiB | |",
        f"| RSS growth over the run | {m.get('rss_growth_mib', 0):+,.1f} MiB "
        f"({m.get('rss_start_mib', 0):,.0f} -> {m.get('rss_end_mib', 0):,.0f}; second half "
        f"{m.get('second_half_mib_per_minute', 0):+,.1f} MiB/min) | |",
        f"| delivery latency p50 / p99 | {ms(r['latency_p50_ms'])} / {ms(r['latency_p99_ms'])} "
        f"(max {ms(r['latency_max_ms'])}) | |",
        "",
        f"Messages sent: {r['messages']:,}; frames received: {r['frames_received']:,} "
        f"(duplicates {r['duplicates']:,}); connections: {r['sessions']:,} "
        f"({r['steady_sessions']:,} steady, {r['drops']:,} dropped); failed connects "
        f"{r['connect_failures']:,}, failed sends {r['send_failures']:,}. A member is live for a "
        f"message if its joins were answered before the send and it did not drop within "
        f"{s['life']:g} s after. Run took {r['seconds']:.0f} s.",
    ]
    if r["missed_examples"]:
        lines += ["", "Missed, first few: " + "; ".join(r["missed_examples"])]
    if r["errors"]:
        lines += ["", "Errors, first few: " + "; ".join(r["errors"])]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--clients", type=int, default=1_000)
    parser.add_argument("--seconds", type=float, default=180, help="of messages and churn")
    parser.add_argument("--churn", type=float, default=0.2, help="share of churning clients")
    parser.add_argument("--rooms", type=int, default=50)
    parser.add_argument("--rooms-per-client", type=int, default=3)
    parser.add_argument("--rate", type=float, default=5.0, help="messages a second")
    parser.add_argument("--stay-min", type=float, default=3.0)
    parser.add_argument("--stay-max", type=float, default=12.0)
    parser.add_argument("--life", type=float, default=5.0, help="seconds a message lives")
    parser.add_argument("--settle", type=float, default=30.0, help="seconds to wait for rows")
    parser.add_argument("--strategy", default="gsi_query")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--handlers", default="benchmarks.load_handlers", help="fanout serve's")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if shutil.which("node") is None:
        parser.error("dynalite needs Node.js (`make node_modules/.stamp`)")
    result = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    text = markdown(result)
    (args.out / "load.md").write_text(text)
    (args.out / "load.json").write_text(json.dumps(result, indent=2) + "\n")
    print(text)
    return 0 if result["missed"] == 0 and result["rows_left"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
