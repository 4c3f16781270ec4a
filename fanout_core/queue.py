"""The SQS path's messages: their format, how targets are packed, and the batch sender.

``sqs_batched`` fans out as a tree. The sending invocation enqueues one *read task* per
audience partition (a room's, a user's, each everyone-shard) and returns. A worker
(``fanout_core.worker``) reads one page of its task's partition (or of one key range of
it), enqueues the rest as the next task (or tasks) before it posts, and posts the page,
handing what is over a bounded batch on as *post batches* of up to ``TARGETS_PER_MESSAGE``
ids. Frames travel base64-encoded, so a
128 KB frame fits an SQS message whatever it holds (JSON-escaping could double it). A body
carries its frame's message id (``mid``), so a worker never parses the frame; bodies
without one (sent before it was added) and of version 1 (post batches with a plain
``frame``) are still read.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from fanout_core import keys
from fanout_core.audience import Target
from fanout_core.clients import aws_client
from fanout_core.config import FanoutConfig
from fanout_core.delivery import Backoff
from fanout_core.ranges import KeyRange, is_bound
from fanout_core.result import FanoutResult

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import SendMessageBatchRequestEntryTypeDef

log = logging.getLogger(__name__)

TARGETS_PER_MESSAGE = 100
MAX_ENTRIES_PER_CALL = 10  # SendMessageBatch's limit
# SQS's batch limit is 256 KB on older quota pages (1 MiB in the current API model).
MAX_BYTES_PER_CALL = 250_000
SEND_BACKOFF = Backoff(attempts=5, base=0.1, cap=2.0)
BODY_VERSION = 2
# A read task of one key range: a worker that predates ranges would read the whole partition
# from the range's start, so it must refuse the body (dead-letter queue) rather than ignore
# the range and post the rest of the partition again.
RANGED_BODY_VERSION = 3

SqsResponse = dict[str, list[dict[str, str]]]
# An entry of a SendMessageBatch call and how many connection ids its message carries.
_Entry = tuple["SendMessageBatchRequestEntryTypeDef", int]


def _frame_of(data: dict[str, Any]) -> bytes:
    if "frame64" in data:
        try:
            return base64.b64decode(str(data["frame64"]), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("'frame64' is not base64") from None
    if isinstance(data.get("frame"), str):  # version 1
        return str(data["frame"]).encode()
    raise ValueError("'frame64' (or version 1's 'frame') must be a string")


def _message_id_of(data: dict[str, Any], frame: bytes) -> str:
    mid = data.get("mid")
    if isinstance(mid, str):
        return mid
    if mid is not None:
        raise ValueError("'mid' must be a string")
    # A body from a sender that predates 'mid': the id is the frame's own.
    try:
        found = json.loads(frame).get("id", "")
    except (ValueError, AttributeError):
        return ""
    return found if isinstance(found, str) else ""


def _ids_of(data: dict[str, Any], name: str) -> tuple[str, ...]:
    ids = data.get(name, [])
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ValueError(f"'{name}' must be a list of strings")
    return tuple(ids)


@dataclass(frozen=True)
class Batch:
    """A post batch: post ``frame`` to these connections of one endpoint."""

    frame: bytes
    endpoint: str
    connection_ids: tuple[str, ...]
    attempt: int = 0  # posts of these ids that failed before (429, 5xx, no answer)
    delay_seconds: int = 0  # SQS holds it this long (a retry's backoff)
    message_id: str = ""  # the frame's id, for counts and logs

    def encode(self) -> str:
        """The SQS message body."""
        return _dumps(
            {
                "v": BODY_VERSION,
                "kind": "post",
                "mid": self.message_id,
                "frame64": base64.b64encode(self.frame).decode(),
                "endpoint": self.endpoint,
                "ids": list(self.connection_ids),
                "attempt": self.attempt,
            }
        )

    @property
    def targets_count(self) -> int:
        """Connections it names."""
        return len(self.connection_ids)

    def targets(self) -> list[Target]:
        """The connections to post to."""
        return [Target(cid, self.endpoint) for cid in self.connection_ids]

    @classmethod
    def decode(cls, body: str) -> Batch:
        """A post batch's body; ValueError if it is anything else."""
        message = decode(body)
        if not isinstance(message, Batch):
            raise ValueError("not a fanout batch: a read task")
        return message


@dataclass(frozen=True)
class ReadTask:
    """A read task: post ``frame`` to the live members of ``partition`` from ``start`` on."""

    frame: bytes
    partition: str  # an audience index partition: ROOM#<room>, USER#<principal>, ALL#<nn>
    start: dict[str, Any] | None = None  # the page's ExclusiveStartKey; None: the first
    exclude: tuple[str, ...] = ()
    depth: int = 0  # pages read before this one
    key_range: KeyRange | None = None  # a part of the partition (ranges.split); None: all
    message_id: str = ""  # the frame's id, for counts and logs

    def encode(self) -> str:
        """The SQS message body."""
        body: dict[str, Any] = {
            "v": BODY_VERSION if self.key_range is None else RANGED_BODY_VERSION,
            "kind": "read",
            "mid": self.message_id,
            "frame64": base64.b64encode(self.frame).decode(),
            "partition": self.partition,
            "start": self.start,
            "exclude": list(self.exclude),
            "depth": self.depth,
        }
        if self.key_range is not None:
            body["range"] = [self.key_range.lower, self.key_range.upper]
        return _dumps(body)

    @property
    def targets_count(self) -> int:
        """Connections it names: none, it finds them."""
        return 0

    @property
    def delay_seconds(self) -> int:
        """Read at once."""
        return 0

    def next(self, start: dict[str, Any]) -> ReadTask:
        """The task for the rest of the partition, from ``start``."""
        return replace(self, start=start, depth=self.depth + 1)

    def split(self, start: dict[str, Any], ranges: list[KeyRange]) -> list[ReadTask]:
        """Tasks for the rest of the partition, one per range: the first goes on from
        ``start``, the others from their lower bounds."""
        return [
            replace(self, start=start if i == 0 else None, depth=self.depth + 1, key_range=r)
            for i, r in enumerate(ranges)
        ]


Task = Batch | ReadTask


def decode(body: str) -> Task:
    """Parse an SQS message body; ValueError if it is not one of ours."""
    data = json.loads(body)
    if not isinstance(data, dict) or data.get("v") not in (1, BODY_VERSION, RANGED_BODY_VERSION):
        raise ValueError("not a fanout batch or task (missing or unknown 'v')")
    frame = _frame_of(data)
    if data.get("kind", "post") == "post":
        endpoint, attempt = data.get("endpoint"), data.get("attempt", 0)
        if not isinstance(endpoint, str):
            raise ValueError("'endpoint' must be a string")
        if type(attempt) is not int or attempt < 0:
            raise ValueError("'attempt' must be an integer >= 0")
        message_id = _message_id_of(data, frame)
        return Batch(frame, endpoint, _ids_of(data, "ids"), attempt, message_id=message_id)
    if data["kind"] != "read":
        raise ValueError(f"unknown kind {data['kind']!r}")
    start, depth = data.get("start"), data.get("depth", 0)
    if start is not None and not isinstance(start, dict):
        raise ValueError("'start' must be an object or null")
    if type(depth) is not int or depth < 0:
        raise ValueError("'depth' must be an integer >= 0")
    partition = keys.validate_partition(data.get("partition"))
    key_range = _range_of(data.get("range"))
    exclude = _ids_of(data, "exclude")
    message_id = _message_id_of(data, frame)
    return ReadTask(frame, partition, start, exclude, depth, key_range, message_id)


def _range_of(value: object) -> KeyRange | None:
    if value is None:
        return None
    if (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, str) and is_bound(v) for v in value)
        and value[0] < value[1]
    ):
        return KeyRange(value[0], value[1])
    raise ValueError("'range' must be two increasing sort keys, CONN#...")


def _dumps(value: dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def pack(
    targets: Iterable[Target], frame: bytes, per_message: int, message_id: str = ""
) -> Iterator[Batch]:
    """``targets`` as post batches of up to ``per_message`` ids of one endpoint each."""
    endpoint: str | None = None
    ids: list[str] = []
    for target in targets:
        if ids and (target.endpoint != endpoint or len(ids) >= per_message):
            yield Batch(frame, endpoint or "", tuple(ids), message_id=message_id)
            ids = []
        endpoint = target.endpoint
        ids.append(target.connection_id)
    if ids:
        yield Batch(frame, endpoint or "", tuple(ids), message_id=message_id)


_sqs_clients: dict[tuple[str | None, str], SQSClient] = {}
_sqs_lock = threading.Lock()


def sqs_client(config: FanoutConfig) -> SQSClient:
    """The SQS client for ``config``, built once per container."""
    key = (config.sqs_endpoint, config.region)
    with _sqs_lock:
        if key not in _sqs_clients:
            _sqs_clients[key] = aws_client(
                "sqs", endpoint_url=config.sqs_endpoint, region=config.region
            )
        return _sqs_clients[key]


class BatchSender:
    """Packs batches into SendMessageBatch calls; retries the entries SQS refuses."""

    def __init__(
        self,
        client: SQSClient,
        queue_url: str,
        result: FanoutResult,
        *,
        backoff: Backoff = SEND_BACKOFF,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.queue_url = queue_url
        self.result = result
        self.backoff = backoff
        self.sleep = sleep
        self.entries: list[_Entry] = []
        self.pending_bytes = 0

    def add(self, message: Task) -> None:
        """Queue one message, sending the call before it when it would be over a limit."""
        body = message.encode()
        size = len(body.encode())
        if self.entries and (
            len(self.entries) >= MAX_ENTRIES_PER_CALL
            or self.pending_bytes + size > MAX_BYTES_PER_CALL
        ):
            self.flush()
        entry: SendMessageBatchRequestEntryTypeDef = {
            "Id": str(len(self.entries)),
            "MessageBody": body,
        }
        if message.delay_seconds:
            entry["DelaySeconds"] = message.delay_seconds
        self.entries.append((entry, message.targets_count))
        self.pending_bytes += size

    def flush(self) -> None:
        """Send what is queued; raise if SQS refuses an entry or keeps failing some."""
        pending = self.entries
        self.entries, self.pending_bytes = [], 0
        self.backoff.until_done(
            self._send,
            pending,
            gave_up=lambda left: RuntimeError(
                f"SQS did not take {len(left)} messages after retries"
            ),
            sleep=self.sleep,
        )

    def _send(self, pending: list[_Entry]) -> list[_Entry]:
        """Send ``pending`` in one call; the entries SQS did not take."""
        response = self.client.send_message_batch(
            QueueUrl=self.queue_url, Entries=[entry for entry, _ in pending]
        )
        by_id = {entry["Id"]: (entry, count) for entry, count in pending}
        for ok in response.get("Successful", []):
            _, count = by_id.pop(ok["Id"])
            self.result.enqueued += count
            self.result.queue_messages += 1
        failed = response.get("Failed", [])
        # A sender fault (bad entry) will not pass on retry: stop at once.
        if any(f.get("SenderFault") for f in failed):
            raise RuntimeError(f"SQS refused a batch entry: {failed[0]}")
        return list(by_id.values())
