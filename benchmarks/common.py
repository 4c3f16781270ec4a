"""What the benchmark modules share: ids and rooms, the servers they run in processes of their
own, fresh processes of the installed wheel, a table loader in the library's exact layout,
and this process's CPU time.

Every benchmark imports this module and the library; it imports no benchmark.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from fanout_core import sizes
from fanout_core.config import FanoutConfig

# Credentials for every client a benchmark builds against its local servers; set before the
# first one is built (a value the caller already set is kept).
for _name, _value in (
    ("AWS_ACCESS_KEY_ID", "bench"),
    ("AWS_SECRET_ACCESS_KEY", "bench"),
    ("AWS_DEFAULT_REGION", "us-east-1"),
):
    os.environ.setdefault(_name, _value)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
ENDPOINT = "https://abcd123456.execute-api.us-east-1.amazonaws.com/prod"
LATENCY = 0.020  # seconds the local Management API takes to answer each post
COLD_CHILD = Path(__file__).with_name("cold_child.py")
FANOUT_MARK = "-- fan-out:"  # cold_child.py's line on stderr before each fan-out (its MARK)
BENCH_USER = "bench-user-0001"
BENCH_USER_CONNECTIONS = 3  # the first connections of a loaded table belong to BENCH_USER


def bench_id(i: int) -> str:
    """The i-th connection id: 16 characters, like API Gateway's."""
    return f"bench{i:010d}="


def room_name(room_size: int, index: int) -> str:
    """The index-th room of a table whose rooms have ``room_size`` members."""
    return f"k{room_size}-{index:06d}"


def cpu_seconds() -> float:
    """This process's CPU time so far, user and system, every thread."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- servers in processes of their own -------------------------------------------------------


@dataclass(frozen=True)
class Served:
    """A server process of ``server`` and the URL it printed."""

    process: subprocess.Popen[str]
    url: str


@contextlib.contextmanager
def server(module: str, *args: str) -> Iterator[Served]:
    """``python -m module args``, which prints its URL and then answers a command per stdin
    line (``ask``)."""
    process = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        yield Served(process, process.stdout.readline().strip())
    finally:
        process.stdin.close()
        process.wait(30)


def management_api(
    latency: float, count: int, *options: str
) -> contextlib.AbstractContextManager[Served]:
    """``benchmarks.mgmt_server`` with ``count`` open ids."""
    return server("benchmarks.mgmt_server", str(latency), str(count), *options)


def ask(served: Served, command: str) -> Any:
    """Send a ``server`` a command; its answer, a line of JSON."""
    stdin, stdout = served.process.stdin, served.process.stdout
    assert stdin is not None
    assert stdout is not None
    stdin.write(command + "\n")
    stdin.flush()
    return json.loads(stdout.readline())


# -- fresh processes of the package as users install it -----------------------------------------


@contextlib.contextmanager
def installed_wheel() -> Iterator[Path]:
    """A venv holding the built wheel and its dependencies, nothing else; yields its python.

    Its site-packages is the only one its processes see: not this venv's, whose editable
    install of the package would import it from the source tree."""
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    with tempfile.TemporaryDirectory(prefix="fanout-cold-") as tmp:
        place = Path(tmp)
        subprocess.run([*pip, "wheel", "--no-deps", "-w", str(place / "dist"), str(ROOT)],
                       check=True, capture_output=True, cwd=place)  # fmt: skip
        wheel = next((place / "dist").glob("*.whl"))
        constraints = place / "constraints.txt"
        frozen = subprocess.run([*pip, "freeze", "--exclude-editable"], check=True,
                                capture_output=True, text=True).stdout  # fmt: skip
        constraints.write_text(frozen)
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(place / "venv")],
                       check=True)  # fmt: skip
        python = place / "venv" / "bin" / "python"
        code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
        purelib = subprocess.run([python, "-c", code], check=True, capture_output=True,
                                 text=True).stdout.strip()  # fmt: skip
        subprocess.run([*pip, "install", "--target", purelib, "-c", str(constraints), str(wheel)],
                       check=True, capture_output=True)  # fmt: skip
        # pip compiles what it installs; this makes sure, with the venv's own interpreter.
        subprocess.run([python, "-m", "compileall", "-q", purelib], check=True)
        python.with_name("wheel").write_text(wheel.name)
        yield python


def lambda_env(**extra: str) -> dict[str, str]:
    """The environment of a Lambda-like process: this one's, without settings of ours, AWS's or
    Python's, plus the credentials and region Lambda sets and ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FANOUT_", "PYTHON"))}
    env.update(
        AWS_ACCESS_KEY_ID="cold",
        AWS_SECRET_ACCESS_KEY="cold",
        AWS_SESSION_TOKEN="cold",
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
    )
    env.update(extra)
    return env


def cold_child(python: Path, env: dict[str, str], *args: str, flags: tuple[str, ...] = ()) -> Any:
    """One fresh process of ``benchmarks/cold_child.py`` run by ``python`` (an
    ``installed_wheel``): its JSON line, with ``process_seconds`` (and with ``flags``, its
    ``stderr``) added."""
    started = time.perf_counter()
    done = subprocess.run(
        [str(python), *flags, "-P", str(COLD_CHILD), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=python.parent,  # away from the source tree
        timeout=600,
    )
    if done.returncode != 0:
        raise SystemExit(f"cold_child {' '.join(args)} failed:\n{done.stderr[-4000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    if isinstance(figures, dict):
        figures["process_seconds"] = time.perf_counter() - started
        figures["stderr"] = done.stderr if flags else ""
    return figures


def in_turn(
    repeats: int, sides: dict[str, Callable[[int], Any]]
) -> dict[str, list[dict[str, Any]]]:
    """``repeats`` runs of each side, the sides in turn, their order reversed every round."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in sides}
    names = list(sides)
    for repeat in range(repeats):
        for name in names if repeat % 2 == 0 else reversed(names):
            runs[name].append(sides[name](repeat))
    return runs


def import_times(stderr: str, start: str | None = None, end: str | None = None) -> dict[str, int]:
    """``-X importtime``'s self microseconds by module (between the lines ``start`` and ``end``
    when given)."""
    times: dict[str, int] = {}
    lines = stderr.splitlines()
    if start is not None:
        lines = lines[lines.index(start) + 1 :]
    if end is not None:
        lines = lines[: lines.index(end)]
    for line in lines:
        if line.startswith("import time:") and "|" in line:
            own, _, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
            if own.isdigit():
                times[name] = int(own)
    return times


def imported_beyond(ours: dict[str, int], theirs: dict[str, int]) -> dict[str, Any]:
    """What ``ours`` imports that ``theirs`` does not: ms of self time by package (fanout_core
    by module), largest first."""
    groups: dict[str, int] = {}
    for name, micros in ours.items():
        if name in theirs:
            continue
        parts = name.split(".")
        key = ".".join(parts[:2]) if parts[0] == "fanout_core" else parts[0]
        groups[key] = groups.get(key, 0) + micros
    ranked = sorted(groups.items(), key=lambda kv: -kv[1])
    return {
        "library": sorted(n for n in ours if n not in theirs and n.startswith("fanout_core")),
        "modules": sum(1 for name in ours if name not in theirs),
        "ms": sum(groups.values()) / 1000,
        "by_package_ms": {k: v / 1000 for k, v in ranked},
    }


def imports_summary(beyond: dict[str, Any], top: int = 6) -> str:
    """An ``imported_beyond`` in a line: modules, self time, the largest packages."""
    parts = [f"{name} {ms:.1f}" for name, ms in list(beyond["by_package_ms"].items())[:top]]
    return f"{beyond['modules']} modules, {beyond['ms']:.0f} ms self time ({', '.join(parts)})"


def profile_summary(seen: dict[str, Any]) -> str:
    """What a ``--profile`` run of ``cold_child`` built, loaded, started and imported, and the
    CPU seconds its thread spent there under the profiler (they overlap: a client's build
    includes its service model's load and imports)."""
    ranked = sorted(seen["packages"].items(), key=lambda kv: -kv[1])
    packages = ", ".join(f"{name} {count}" for name, count in ranked)
    t = seen["seconds"]
    return (
        f"clients built: {', '.join(seen['clients']) or 'none'}; service models loaded: "
        f"{', '.join(seen['service_models']) or 'none'}; threads started: "
        f"{len(seen['threads'])}; modules imported: {seen['modules']} ({packages or 'none'}); "
        f"the calling thread's CPU under the profiler: {t['total']:.2f} s, of which importing "
        f"{t['imports']:.2f} s, building clients {t['clients']:.2f} s (their service models "
        f"{t['service_models']:.2f} s), starting threads {t['threads']:.2f} s"
    )


# -- loading tables fast, in the library's exact layout ---------------------------------------


def attribute_values(item: dict[str, str | int]) -> dict[str, dict[str, str]]:
    return {k: ({"N": str(v)} if isinstance(v, int) else {"S": v}) for k, v in item.items()}


def bench_items(i: int, room_size: int, now: float, ttl: int) -> list[dict[str, str | int]]:
    """The items of the i-th loaded connection: its row and its room's membership."""
    return sizes.layout_items(
        bench_id(i),
        ENDPOINT,
        rooms=(room_name(room_size, i // room_size),),
        expires_at=int(now) + ttl,
        connected_at_ms=int(now * 1000),
        # The first few connections belong to one user: a publish to it reads its partition.
        principal=BENCH_USER if i < BENCH_USER_CONNECTIONS else None,
    )


def check_layout(config: FanoutConfig) -> None:
    """The loader's items are exactly what ConnectionStore.connect writes."""
    from fanout_core.store import ConnectionStore

    now = 1_700_000_000.25
    store = ConnectionStore(config, clock=lambda: now)
    store.connect(bench_id(7), ENDPOINT, rooms=[room_name(10, 0)])
    client = ddb_client(config)
    stored = client.scan(TableName=config.table, ConsistentRead=True)["Items"]
    expected = [attribute_values(item) for item in bench_items(7, 10, now, config.ttl_seconds)]
    key = lambda item: (item["pk"]["S"], item["sk"]["S"])  # noqa: E731
    if sorted(stored, key=key) != sorted(expected, key=key):
        raise SystemExit(f"the loader's layout differs from the library's:\n{stored}\n{expected}")
    store.disconnect(bench_id(7))


def ddb_client(config: FanoutConfig) -> Any:
    """A DynamoDB client of its own (16 connections) on the config's endpoint."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "dynamodb",
        endpoint_url=config.dynamodb_endpoint,
        region_name="us-east-1",
        config=Config(max_pool_connections=16),
    )


def load(config: FanoutConfig, connections: int, room_size: int, threads: int = 6) -> float:
    """BatchWriteItem, 25 items a call, from several threads; returns seconds."""
    client = ddb_client(config)
    now = time.time()

    def chunks() -> Iterator[list[dict[str, Any]]]:
        batch: list[dict[str, Any]] = []
        for i in range(connections):
            for item in bench_items(i, room_size, now, config.ttl_seconds):
                batch.append({"PutRequest": {"Item": attribute_values(item)}})
                if len(batch) == 25:
                    yield batch
                    batch = []
        if batch:
            yield batch

    def write(batch: list[dict[str, Any]]) -> None:
        requests = {config.table: batch}
        while requests:
            requests = client.batch_write_item(RequestItems=requests).get("UnprocessedItems")

    started = time.perf_counter()
    errors: list[BaseException] = []
    slots = threading.BoundedSemaphore(4 * threads)  # Executor.map would queue every batch

    def done(future: Future[None]) -> None:
        if future.exception() is not None:
            errors.append(cast(BaseException, future.exception()))
        slots.release()

    with ThreadPoolExecutor(threads) as pool:
        for batch in chunks():
            slots.acquire()
            pool.submit(write, batch).add_done_callback(done)
    if errors:
        raise errors[0]
    return time.perf_counter() - started
