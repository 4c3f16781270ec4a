"""Cold start: a fresh Lambda container's imports and its first ``$connect``.

The package is built as a wheel and installed with its dependencies (at this venv's
versions) into a venv of its own, compiled as pip installs it (``common.installed_wheel``);
every figure comes from fresh processes of that venv (``benchmarks/cold_child.py``), the
median of several, the two sides of a comparison in turn (their order reversed every round)
so that drift hits both alike:

- (a) ``import fanout_core.handlers`` against ``import boto3``;
- (b) a first ``$connect``: import ``fanout_core.handlers`` and answer one ``connect(event)``
  against a pre-created table on dynalite, against a plain boto3 handler making the same
  write (the library's own request, recorded through a proxy first; both build their client
  inside the timed part, from the same environment).

A profiled run of each (``-X importtime``; botocore clients, service models and threads
counted) says what the cold side still pays. The first fan-out is ``benchmarks/cold_fanout.py``;
``python -m benchmarks.run --cold-start [--quick] [--profile]`` runs both alone.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import marshal
import os
import re
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import (
    bench_id,
    cold_child,
    import_times,
    imported_beyond,
    imports_summary,
    in_turn,
    lambda_env,
    profile_summary,
)
from fanout_core.config import FanoutConfig
from fanout_core.table import create_table

TARGET_IMPORT = 1.15  # import fanout_core.handlers / import boto3
TARGET_CONNECT = 1.3  # a first $connect / a plain boto3 handler's first write
DOMAIN = "abcd123456.execute-api.us-east-1.amazonaws.com"


@dataclass(frozen=True)
class ColdPlan:
    """How many fresh processes each figure is the median of."""

    repeats: int  # a side


FULL = ColdPlan(11)
QUICK = ColdPlan(3)


def compared(ours: list[dict[str, Any]], baseline: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of the library's runs and the baseline's: timed part and whole process, ms."""

    def ms(runs: list[dict[str, Any]], key: str) -> float:
        return float(statistics.median(r[key] for r in runs)) * 1000

    library, base = ms(ours, "seconds"), ms(baseline, "seconds")
    return {
        "library_ms": library,
        "baseline_ms": base,
        "ratio": library / base,
        "library_cpu_ms": ms(ours, "cpu"),
        "baseline_cpu_ms": ms(baseline, "cpu"),
        "library_process_ms": ms(ours, "process_seconds"),
        "baseline_process_ms": ms(baseline, "process_seconds"),
        "spread_ms": {
            side: [min(r["seconds"] for r in runs) * 1000, max(r["seconds"] for r in runs) * 1000]
            for side, runs in (("library", ours), ("baseline", baseline))
        },
    }


# -- (a) imports ------------------------------------------------------------------------------


def measure_imports(python: Path, repeats: int) -> dict[str, Any]:
    env = lambda_env()
    runs = in_turn(repeats, {
        "boto3": lambda _: cold_child(python, env, "import", "boto3"),
        "handlers": lambda _: cold_child(python, env, "import", "fanout_core.handlers"),
    })  # fmt: skip
    return compared(runs["handlers"], runs["boto3"])


# -- (b) a first $connect -----------------------------------------------------------------------


def connect_event(connection_id: str) -> dict[str, Any]:
    """A ``$connect`` event in the shape API Gateway documents."""
    return {
        "headers": {"Host": DOMAIN, "Sec-WebSocket-Version": "13", "X-Forwarded-Proto": "https"},
        "requestContext": {
            "routeKey": "$connect",
            "eventType": "CONNECT",
            "messageDirection": "IN",
            "stage": "prod",
            "connectedAt": int(time.time() * 1000),
            "requestTimeEpoch": int(time.time() * 1000),
            "identity": {"sourceIp": "192.0.2.1"},
            "requestId": uuid.uuid4().hex[:16],
            "domainName": DOMAIN,
            "connectionId": connection_id,
            "apiId": DOMAIN.split(".")[0],
        },
        "isBase64Encoded": False,
    }


class Recorder(http.server.ThreadingHTTPServer):
    """A proxy in front of DynamoDB that notes each request's operation and parameters."""

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _Forward)
        self.upstream = upstream.removeprefix("http://")
        self.calls: list[tuple[str, dict[str, Any]]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Forward(http.server.BaseHTTPRequestHandler):
    server: Recorder

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        operation = self.headers.get("X-Amz-Target", "").rsplit(".", 1)[-1]
        self.server.calls.append((operation, json.loads(body or b"{}")))
        upstream = http.client.HTTPConnection(self.server.upstream, timeout=30)
        try:
            upstream.request("POST", self.path, body, dict(self.headers))
            answer = upstream.getresponse()
            data = answer.read()
        finally:
            upstream.close()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("connection", "transfer-encoding", "content-length"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def recording(upstream: str) -> Iterator[Recorder]:
    recorder = Recorder(upstream)
    thread = threading.Thread(target=recorder.serve_forever, daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        recorder.shutdown()
        recorder.server_close()


WRITES = {"PutItem", "BatchWriteItem", "TransactWriteItems", "UpdateItem"}
Calls = list[tuple[str, dict[str, Any]]]


def payload_file(place: Path, connection_id: str, writes: Calls | None = None) -> str:
    """The event (and the plain handler's writes) for one child, marshalled: reading it needs
    no import."""
    path = place / f"payload-{connection_id.strip('=')}.bin"
    path.write_bytes(marshal.dumps({"event": connect_event(connection_id), "writes": writes}))
    return str(path)


def same_writes(recorded: Calls, recorded_id: str, connection_id: str) -> Calls:
    """The library's recorded writes, for another connection id, as boto3 method calls."""
    text = json.dumps(recorded).replace(recorded_id, connection_id)
    return [
        (re.sub(r"(?<!^)(?=[A-Z])", "_", op).lower(), params) for op, params in json.loads(text)
    ]


def measure_connect(python: Path, endpoint: str, repeats: int) -> dict[str, Any]:
    table = f"cold-connect-{uuid.uuid4().hex[:6]}"
    create_table(FanoutConfig(table=table, dynamodb_endpoint=endpoint))
    place = python.parent
    with recording(endpoint) as recorder:
        env = lambda_env(FANOUT_TABLE=table, AWS_ENDPOINT_URL_DYNAMODB=recorder.url)
        first = bench_id(0)
        cold_child(python, env, "connect", payload_file(place, first))
        library_calls = [op for op, _ in recorder.calls]
        recorded = [(op, params) for op, params in recorder.calls if op in WRITES]
        if not recorded:
            raise SystemExit(f"a $connect made {library_calls}: no write")
        recorder.calls.clear()
        second = bench_id(1)
        cold_child(
            python, env, "plain", payload_file(place, second, same_writes(recorded, first, second))
        )
        expected = json.loads(json.dumps(recorded).replace(first, second))
        if [list(call) for call in recorder.calls] != expected:
            raise SystemExit(f"the plain handler's calls differ: {recorder.calls}")
    env = lambda_env(FANOUT_TABLE=table, AWS_ENDPOINT_URL_DYNAMODB=endpoint)
    ids = iter(range(2, 10**6))

    def library(_: int) -> Any:
        return cold_child(python, env, "connect", payload_file(place, bench_id(next(ids))))

    def plain(_: int) -> Any:
        connection_id = bench_id(next(ids))
        writes = same_writes(recorded, first, connection_id)
        return cold_child(python, env, "plain", payload_file(place, connection_id, writes))

    runs = in_turn(repeats, {"plain": plain, "connect": library})
    return {
        **compared(runs["connect"], runs["plain"]),
        "library_calls": library_calls,
        "table": table,
        "writes": recorded,  # what both send, for the connection id below
        "writes_connection_id": first,
    }


# -- what the cold side pays ----------------------------------------------------------------------


def profile(python: Path, connect_env: dict[str, str], ours: str, plain: str) -> dict[str, Any]:
    """One profiled run of each side, next to its baseline."""
    sides = {
        "boto3": (lambda_env(), "import", "boto3"),
        "handlers": (lambda_env(), "import", "fanout_core.handlers"),
        "plain": (connect_env, "plain", plain),
        "connect": (connect_env, "connect", ours),
    }
    times = {
        side: import_times(cold_child(python, env, *args, flags=("-X", "importtime"))["stderr"])
        for side, (env, *args) in sides.items()
    }
    counted = {side: cold_child(python, *sides[side], "--profile") for side in ("plain", "connect")}
    return {
        "import_beyond_boto3": imported_beyond(times["handlers"], times["boto3"]),
        "connect_beyond_plain": imported_beyond(times["connect"], times["plain"]),
        **counted,
    }


def measure_cold_start(python: Path, plan: ColdPlan) -> dict[str, Any]:
    """This section's results, from the venv of ``python`` (an ``installed_wheel``)."""
    from fanout_core.local import backends

    started, load_average = time.perf_counter(), os.getloadavg()
    with backends.dynalite() as endpoint:
        imports = measure_imports(python, plan.repeats)
        connect = measure_connect(python, endpoint, plan.repeats)
        env = lambda_env(FANOUT_TABLE=connect["table"], AWS_ENDPOINT_URL_DYNAMODB=endpoint)
        ours, plain = bench_id(10**6), bench_id(10**6 + 1)
        writes = same_writes(connect["writes"], connect["writes_connection_id"], plain)
        payloads = (payload_file(python.parent, ours), payload_file(python.parent, plain, writes))
        profiled = profile(python, env, *payloads)
    return {
        "plan": asdict(plan),
        "wheel": python.with_name("wheel").read_text(),
        "load_average": load_average,
        "imports": imports,
        "connect": connect,
        "profile": profiled,
        "seconds": time.perf_counter() - started,
    }


# -- the report --------------------------------------------------------------------------------


def targets(results: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for (a) and (b)."""
    cold = results.get("cold_start")
    if not cold:
        return []
    i, c, n = cold["imports"], cold["connect"], cold["plan"]["repeats"]
    return [
        (f"`import fanout_core.handlers` at most {TARGET_IMPORT}x `import boto3` (installed wheel)",
         f"{i['library_ms']:.0f} vs {i['baseline_ms']:.0f} ms (median of {n}): {i['ratio']:.2f}x",
         i["ratio"] <= TARGET_IMPORT),
        (f"a first `$connect` at most {TARGET_CONNECT}x a plain boto3 handler's same first write",
         f"{c['library_ms']:.0f} vs {c['baseline_ms']:.0f} ms (median of {n}): {c['ratio']:.2f}x",
         c["ratio"] <= TARGET_CONNECT),
    ]  # fmt: skip


def _rows(figure: str, x: dict[str, Any], target: float) -> list[str]:
    """The table's rows of one comparison: the timed part (wall, then CPU), the process."""
    rows = [f"| {figure} | {x['library_ms']:.0f} ms | {x['baseline_ms']:.0f} ms "
            f"| {x['ratio']:.2f}x | <= {target}x |"]  # fmt: skip
    for what, key in (("CPU time of the same", "cpu_ms"), ("whole process", "process_ms")):
        ours, theirs = x[f"library_{key}"], x[f"baseline_{key}"]
        rows.append(f"| {figure[:3]} {what} | {ours:.0f} ms | {theirs:.0f} ms "
                    f"| {ours / theirs:.2f}x | |")  # fmt: skip
    return rows


def section(results: dict[str, Any]) -> list[str]:
    """The markdown of this section, empty if the run did not measure it."""
    cold = results.get("cold_start")
    if not cold:
        return []
    i, c, p = cold["imports"], cold["connect"], cold["profile"]
    return [
        "",
        "## Cold start: imports and a first `$connect` (fresh processes, median)",
        "",
        f"`{cold['wheel']}` and its dependencies installed by pip into a venv of their own, "
        f"compiled; {cold['plan']['repeats']} processes a side, the sides in turn; load average "
        f"at the start: {', '.join(f'{x:.1f}' for x in cold['load_average'])}.",
        "",
        "| figure | library | baseline | ratio | target |",
        "|---|---:|---:|---:|---:|",
        *_rows("(a) `import fanout_core.handlers` vs `import boto3`", i, TARGET_IMPORT),
        *_rows(
            "(b) a first `$connect` (import, one call) vs a plain boto3 handler's same write",
            c,
            TARGET_CONNECT,
        ),
        "",
        f"The `$connect`'s DynamoDB calls: {', '.join(c['library_calls'])}; the plain handler "
        "makes the same write (the library's request, recorded). What the library's side "
        "still pays, from one profiled run each (self times from `-X importtime`; the counts "
        "leave out botocore, which the profiler loads first):",
        "",
        f"- (a) imported beyond `import boto3`: {imports_summary(p['import_beyond_boto3'])};",
        f"- (b) imported beyond the plain handler: {imports_summary(p['connect_beyond_plain'])};",
        f"- (b) the library's modules a `$connect` loads: "
        f"{', '.join(p['connect_beyond_plain']['library'])};",
        f"- (b) `$connect`: {profile_summary(p['connect'])};",
        f"- (b) plain: {profile_summary(p['plain'])}.",
    ]
