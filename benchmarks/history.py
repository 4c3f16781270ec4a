"""What history costs: the calls and seconds of a send with it on and off, and a resume's reads.

On one loaded table (gsi_query, one room), messages are published with history off, then on
(and on with an idempotency key); every DynamoDB call is counted by operation and its
ConsumedCapacity summed. Then one member resumes 10 and 100 frames: its reads, as dynalite
reports them, beside the model's figure for AWS.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from typing import Any

from fanout_core import cost
from fanout_core.config import FanoutConfig
from fanout_core.fanout import Fanout
from fanout_core.message import Message
from fanout_core.publishing import resume
from fanout_core.runtime import Runtime, build_runtime

MESSAGES = 20
RESUMES = (10, 100)
WINDOW = 3600


class Calls:
    """DynamoDB operations a client made, and the read units they consumed."""

    def __init__(self, runtime: Runtime) -> None:
        self.operations: Counter[str] = Counter()
        self.read_units = 0.0
        client = runtime.store.models.client
        client.meta.events.register("before-parameter-build.dynamodb", self._before)
        client.meta.events.register("after-call.dynamodb", self._after)

    def _before(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.operations[model.name] += 1
        if model.name in ("GetItem", "Query"):
            params.setdefault("ReturnConsumedCapacity", "TOTAL")

    def _after(self, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name in ("GetItem", "Query"):
            self.read_units += float(parsed.get("ConsumedCapacity", {}).get("CapacityUnits", 0))

    def take(self) -> tuple[Counter[str], float]:
        taken = (self.operations, self.read_units)
        self.operations, self.read_units = Counter(), 0.0
        return taken


def measure_history(
    results: dict[str, Any],
    config: FanoutConfig,
    room: str,
    members: int,
    *,
    resumes: tuple[int, ...] = RESUMES,
) -> None:
    """Rows in results["history"]: per-message calls with history off/on, and resumes."""
    for label, history_seconds, keyed in (
        ("history off", 0, False),
        ("history on", WINDOW, False),
        ("history on, idempotency key", WINDOW, True),
    ):
        runtime = build_runtime(
            dataclasses.replace(config, history_seconds=history_seconds), strategy="gsi_query"
        )
        try:
            calls = Calls(runtime)
            fanout = Fanout(runtime=runtime)
            started = time.perf_counter()
            for n in range(MESSAGES):
                key = f"{label[:2]}-{n}" if keyed else None
                fanout.publish({"n": n}, room=room, idempotency_key=key)
            seconds = time.perf_counter() - started
            operations, _ = calls.take()
            results["history"].append(
                {
                    "kind": "send",
                    "setting": label,
                    "members": members,
                    "messages": MESSAGES,
                    "calls_per_message": {op: n / MESSAGES for op, n in sorted(operations.items())},
                    "writes_per_message": sum(
                        n for op, n in operations.items() if op in ("PutItem", "UpdateItem")
                    )
                    / MESSAGES,
                    "modelled_write_units": cost.extra_write_units(
                        cost.Workload(1, 1, 1, history=history_seconds > 0, idempotency=keyed)
                    ),
                    "seconds_per_message": seconds / MESSAGES,
                }
            )
            if history_seconds and not keyed:
                measure_resumes(results, runtime, fanout, calls, room, resumes)
        finally:
            runtime.close()


def measure_resumes(
    results: dict[str, Any],
    runtime: Runtime,
    fanout: Fanout,
    calls: Calls,
    room: str,
    resumes: tuple[int, ...] = RESUMES,
) -> None:
    """One member asks the last 10 (and 100) frames of the room; count its reads and posts."""
    for frames in resumes:
        while runtime.history.position(f"ROOM#{room}").seq < frames:
            fanout.publish({"fill": True}, room=room)
        member = next(iter(fanout.members(room)))
        target = runtime.store.get_connection(member.connection_id)
        assert target is not None
        calls.take()
        started = time.perf_counter()
        assert runtime.store.is_member(member.connection_id, room)  # as the handler asks
        result = resume(
            runtime.history,
            runtime.deliverer,
            member.connection_id,
            target.endpoint,
            room,
            last=frames,
        )
        seconds = time.perf_counter() - started
        operations, units = calls.take()
        frame_bytes = len(Message(None, room=room, data={"fill": True}, seq=frames).frame())
        workload = cost.Workload(1, 1, 1, history=True, frame_bytes=frame_bytes)
        model = cost.resume_cost(frames, workload)
        results["history"].append(
            {
                "kind": "resume",
                "frames": frames,
                "posts": result.delivered,
                "requests": sum(operations.values()),
                "calls": dict(sorted(operations.items())),
                "read_units_dynalite": units,
                "modelled_requests": model.requests,
                "modelled_read_units_aws": model.read_units,
                "seconds": seconds,
            }
        )
