"""One fresh process of the cold-start benchmark (``benchmarks/cold_start.py`` runs it).

Run as a script (``python -P cold_child.py MODE ...``) by the interpreter of a venv the built
wheel is installed in. Before its clock starts it imports only modules every Python process
has loaded already, so whatever the measured code imports is counted; it prints its figures
as one line of JSON on stdout.

- ``import MODULE``: seconds (wall and CPU) to import it;
- ``connect PAYLOAD``: seconds (wall and CPU) to import ``fanout_core.handlers`` and answer
  one ``$connect``;
- ``plain PAYLOAD``: the same for a plain boto3 handler: import boto3, build the client, make
  the library's write (its own request, recorded by ``cold_start``);
- ``fanout ROOM``: CPU and wall seconds of a first ``Fanout().publish`` to ROOM after import,
  then of the same publish again (and the CPU of the import, apart).

With ``--profile`` after the mode it reports what the measured part did instead: the modules
it imported, the botocore clients it built and service models it loaded, the threads it
started, and a profile of its thread's CPU (with the profiler's own cost) with its costliest
functions.
"""

import marshal
import sys
import time

# Nothing more before the clock: typing would leave the measured code's own import of it out.
MYPY = False
if MYPY:
    from typing import Any

MARK = "-- fan-out:"  # common.FANOUT_MARK: this script imports nothing of ours


def payload(path: str) -> "dict[str, Any]":
    with open(path, "rb") as file:
        data: dict[str, Any] = marshal.load(file)
        return data


def plain_handler(writes: "list[tuple[str, dict[str, Any]]]") -> "Any":
    """A handler as a user writes it without the library: a client at import, the write."""
    import boto3

    client = boto3.client("dynamodb")  # region, credentials, endpoint: from the environment

    def handler(event: object, context: object) -> "dict[str, Any]":
        for method, params in writes:
            getattr(client, method)(**params)
        return {"statusCode": 200}

    return handler


def elapsed(since: "tuple[float, float]") -> "dict[str, float]":
    """Wall and CPU seconds (this process's, every thread) since ``clocks()`` gave ``since``."""
    return {"seconds": time.perf_counter() - since[0], "cpu": time.process_time() - since[1]}


def clocks() -> "tuple[float, float]":
    return time.perf_counter(), time.process_time()


def measured(mode: str, args: list[str]) -> "tuple[Any, dict[str, Any]]":
    """Run the mode's measured part; what it returned and its figures."""
    if mode == "import":
        started = clocks()
        module = __import__(args[0])
        return module, elapsed(started)
    if mode in ("connect", "plain"):
        data = payload(args[0])
        started = clocks()
        if mode == "connect":
            import fanout_core.handlers

            answer = fanout_core.handlers.connect(data["event"], None)
        else:
            answer = plain_handler(data["writes"])(data["event"], None)
        figures = elapsed(started)
        if answer.get("statusCode") != 200:
            raise SystemExit(f"{mode} answered {answer}")
        return answer, figures
    if mode == "fanout":
        started = clocks()
        from fanout_core import Fanout

        fanout = Fanout()  # the container's runtime, from the environment
        runs: dict[str, Any] = {"import_cpu": elapsed(started)["cpu"]}
        for run in ("cold", "warm"):
            print(f"{MARK} {run}", file=sys.stderr, flush=True)  # for -X importtime's lines
            started = clocks()
            result = fanout.publish({"cold": run}, room=args[0])
            runs[run] = {**elapsed(started), "delivered": result.delivered}
        return fanout, runs
    raise SystemExit(f"unknown mode {mode!r}")


def profiled(mode: str, args: list[str]) -> "dict[str, Any]":
    """What the measured part of ``mode`` imports, builds, loads and starts."""
    import cProfile
    import io
    import pstats
    import threading

    import botocore.loaders
    import botocore.session

    seen: dict[str, Any] = {"clients": [], "service_models": [], "threads": []}
    create_client = botocore.session.Session.create_client
    load_service_model = botocore.loaders.Loader.load_service_model
    start = threading.Thread.start

    def counted_client(self: "Any", service_name: str, *a: "Any", **k: "Any") -> "Any":
        seen["clients"].append(service_name)
        return create_client(self, service_name, *a, **k)

    def counted_model(
        self: "Any", service_name: str, type_name: str, *a: "Any", **k: "Any"
    ) -> "Any":
        seen["service_models"].append(f"{service_name}/{type_name}")
        return load_service_model(self, service_name, type_name, *a, **k)

    def counted_start(self: threading.Thread) -> None:
        seen["threads"].append(self.name)
        return start(self)

    botocore.session.Session.create_client = counted_client  # type: ignore[method-assign]
    botocore.loaders.Loader.load_service_model = counted_model  # type: ignore[method-assign]
    threading.Thread.start = counted_start  # type: ignore[method-assign]
    before = set(sys.modules)
    profiler = cProfile.Profile(time.thread_time)  # this thread's CPU: waits are not cost
    if mode == "fanout":  # the cold publish alone: import outside the profile, as measured
        from fanout_core import Fanout

        before = set(sys.modules)
        fanout = Fanout()
        profiler.runcall(fanout.publish, {"cold": "profile"}, room=args[0])
    else:
        profiler.runcall(measured, mode, args)
    new = sorted(set(sys.modules) - before)
    packages: dict[str, int] = {}
    for name in new:
        top = name.split(".")[0]
        packages[top] = packages.get(top, 0) + 1
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    # Cumulative CPU seconds of this thread (with the profiler's own overhead) in what a cold
    # start pays once; they overlap: building a client includes loading its service model.
    functions = {
        "imports": "_find_and_load",
        "clients": "counted_client",
        "service_models": "counted_model",
        "threads": "counted_start",
    }
    cumulative = {
        what: sum(v[3] for k, v in stats.stats.items() if k[2] == name)  # type: ignore[attr-defined]
        for what, name in functions.items()
    }
    stats.sort_stats("cumulative").print_stats(25)
    total = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]
    seen.update(
        modules=len(new),
        packages=packages,
        profile=out.getvalue(),
        seconds={"total": total, **cumulative},
    )
    return seen


def main() -> None:
    mode, args = sys.argv[1], sys.argv[2:]
    if args and args[-1] == "--profile":
        figures = profiled(mode, args[:-1])
    else:
        figures = measured(mode, args)[1]
    import json

    print(json.dumps(figures))


if __name__ == "__main__":
    main()
