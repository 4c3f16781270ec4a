"""The local Management API in a process of its own, so the client measured has its own GIL.

``python -m benchmarks.mgmt_server LATENCY COUNT`` opens COUNT benchmark connection ids,
prints its URL, and answers until its standard input closes; then it prints its counters.
"""

from __future__ import annotations

import json
import sys

from benchmarks.common import bench_id
from fanout_core.local.management_api import LocalManagementApi


def main() -> None:
    latency, count = float(sys.argv[1]), int(sys.argv[2])
    with LocalManagementApi() as api:
        api.faults.latency = latency
        for i in range(count):
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
