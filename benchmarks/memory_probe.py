"""One fan-out to everyone in a fresh process; prints its peak RSS before and after, in KiB.

``python -m benchmarks.memory_probe ENDPOINT TABLE STRATEGY ROOM`` (ROOM: for the warm-up).
Posts go to a poster that
answers 200 at once: what is measured is what the library holds, not a server's buffers.
"""

from __future__ import annotations

import json
import resource
import sys
import time

from fanout_core.config import FanoutConfig
from fanout_core.delivery.posting import OK, PostOutcome
from fanout_core.message import Message
from fanout_core.outgoing import outgoing
from fanout_core.runtime import build_runtime


class InstantPoster:
    """Answers every post with 200, without I/O, from the Deliverer's event loop."""

    def post(self, endpoint: str, connection_id: str, data: bytes) -> PostOutcome:
        return OK

    async def post_async(self, endpoint: str, connection_id: str, data: bytes) -> PostOutcome:
        return OK

    def close(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


def high_water_kib() -> int:
    """Peak RSS of this process image in KiB.

    /proc's VmHWM belongs to the process's own memory map; ``ru_maxrss`` would also count
    the parent's RSS, which a (v)forked child inherits until it execs.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main() -> None:
    endpoint, table, strategy, room = sys.argv[1:5]
    config = FanoutConfig(table=table, dynamodb_endpoint=endpoint, strategy=strategy)
    runtime = build_runtime(config, poster=InstantPoster())
    runtime.strategy.fanout(outgoing(Message("probe", "warm-up", room)))
    before = high_water_kib()
    started = time.perf_counter()
    result = runtime.strategy.fanout(outgoing(Message("probe", "memory")))
    elapsed = time.perf_counter() - started
    after = high_water_kib()
    runtime.close()
    print(
        json.dumps(
            {
                "before_kib": before,
                "peak_kib": after,
                "delivered": result.delivered,
                "seconds": elapsed,
            }
        )
    )


if __name__ == "__main__":
    main()
