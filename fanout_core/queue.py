"""The SQS path: the queue message format, the batch sender, and the worker side.

Each SQS message carries the frame once and up to ``TARGETS_PER_MESSAGE`` connection ids;
``BatchSender`` packs them into SendMessageBatch calls under SQS's limits. The
``sqs_worker`` handler calls ``process_records``, which posts them and reports only failed
records for redelivery. A redelivered record is posted again to all its ids: clients drop
duplicates by the frame's ``id``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3

from fanout_core.audience import Target
from fanout_core.config import FanoutConfig
from fanout_core.delivery import Backoff, Deliverer
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
BODY_VERSION = 1

SqsResponse = dict[str, list[dict[str, str]]]
# An entry of a SendMessageBatch call and how many connection ids its message carries.
_Entry = tuple["SendMessageBatchRequestEntryTypeDef", int]


@dataclass(frozen=True)
class Batch:
    """What one SQS message carries."""

    frame: bytes
    endpoint: str
    connection_ids: tuple[str, ...]

    def encode(self) -> str:
        """The SQS message body."""
        return json.dumps(
            {
                "v": BODY_VERSION,
                "frame": self.frame.decode(),
                "endpoint": self.endpoint,
                "ids": list(self.connection_ids),
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )

    @classmethod
    def decode(cls, body: str) -> Batch:
        """Parse an SQS message body; ValueError if it is not one of ours."""
        data = json.loads(body)
        if not isinstance(data, dict) or data.get("v") != BODY_VERSION:
            raise ValueError("not a fanout batch (missing or unknown 'v')")
        frame, endpoint, ids = data.get("frame"), data.get("endpoint"), data.get("ids")
        if not isinstance(frame, str) or not isinstance(endpoint, str):
            raise ValueError("'frame' and 'endpoint' must be strings")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ValueError("'ids' must be a list of strings")
        return cls(frame.encode(), endpoint, tuple(ids))

    def targets(self) -> list[Target]:
        """The connections to post to."""
        return [Target(cid, self.endpoint) for cid in self.connection_ids]


_sqs_clients: dict[tuple[str | None, str], SQSClient] = {}
_sqs_lock = threading.Lock()


def sqs_client(config: FanoutConfig) -> SQSClient:
    """The SQS client for ``config``, built once per container."""
    key = (config.sqs_endpoint, config.region)
    with _sqs_lock:
        if key not in _sqs_clients:
            _sqs_clients[key] = boto3.session.Session().client(
                "sqs", endpoint_url=config.sqs_endpoint, region_name=config.region
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

    def add(self, batch: Batch) -> None:
        """Queue one message, sending the call before it when it would be over a limit."""
        body = batch.encode()
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
        self.entries.append((entry, len(batch.connection_ids)))
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


def process_records(
    event: Mapping[str, Any], deliverer: Deliverer
) -> tuple[SqsResponse, list[FanoutResult]]:
    """Post every record of an SQS event; the partial-batch response and per-record counts.

    A record is reported failed when one of its posts failed in a way a retry may fix
    (429, 5xx, no answer) or its body is unreadable (so it reaches the dead-letter queue).
    """
    failures: list[dict[str, str]] = []
    results: list[FanoutResult] = []
    records = event.get("Records")
    if not isinstance(records, list):
        raise ValueError("an SQS event has a 'Records' list")
    for record in records:
        message_id = record.get("messageId") if isinstance(record, dict) else None
        if not isinstance(message_id, str):
            log.error("SQS record without a messageId: skipped")
            continue
        try:
            batch = Batch.decode(record["body"])
            frame_id = json.loads(batch.frame).get("id", "")
            result = FanoutResult(strategy="sqs_worker", room=None, message_id=str(frame_id))
            deliverer.deliver_targets(batch.targets(), batch.frame, result)
        except Exception:  # one bad record must not fail its neighbours
            log.exception("SQS record %s could not be processed", message_id)
            failures.append({"itemIdentifier": message_id})
            continue
        results.append(result)
        if result.failed_retryable:
            failures.append({"itemIdentifier": message_id})
    return {"batchItemFailures": failures}, results
