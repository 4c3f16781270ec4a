"""sqs_batched: resolve the audience by query, hand it to SQS workers in batches.

Each SQS message carries the frame once and up to ``TARGETS_PER_MESSAGE`` connection ids;
SendMessageBatch sends up to 10 such messages per call and stays under 256 KB. The
``sqs_worker`` handler posts them and reports only failed records for redelivery. A
redelivered record is posted again to all its ids: clients drop duplicates by the frame's
``id``.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import boto3

from fanout_core.config import FanoutConfig
from fanout_core.delivery import Deliverer
from fanout_core.errors import ConfigError
from fanout_core.result import FanoutResult
from fanout_core.store import ConnectionStore, Page, Target
from strategies.gsi_query import GsiQuery

log = logging.getLogger(__name__)

TARGETS_PER_MESSAGE = 100
MAX_ENTRIES_PER_CALL = 10
# SQS's batch limit is 256 KB on older quota pages (1 MiB in the current API model).
MAX_BYTES_PER_CALL = 250_000
SEND_ATTEMPTS = 5
BODY_VERSION = 1


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


_sqs_clients: dict[tuple[str | None, str], Any] = {}
_sqs_lock = threading.Lock()


def sqs_client(config: FanoutConfig) -> Any:
    """The SQS client for ``config``, built once per container."""
    key = (config.sqs_endpoint, config.region)
    with _sqs_lock:
        if key not in _sqs_clients:
            _sqs_clients[key] = boto3.session.Session().client(
                "sqs", endpoint_url=config.sqs_endpoint, region_name=config.region
            )
        return _sqs_clients[key]


class SqsBatched(GsiQuery):
    """Query the audience index; enqueue the ids for the ``sqs_worker`` handler."""

    name = "sqs_batched"

    def __init__(
        self,
        store: ConnectionStore,
        deliverer: Deliverer,
        config: FanoutConfig,
        *,
        client: Any = None,
        targets_per_message: int = TARGETS_PER_MESSAGE,
    ) -> None:
        super().__init__(store, deliverer, config)
        self._client = client
        self.targets_per_message = targets_per_message

    @property
    def client(self) -> Any:
        """The SQS client, built on first use."""
        if self._client is None:
            self._client = sqs_client(self.config)
        return self._client

    def dispatch(self, pages: Iterator[Page], data: bytes, result: FanoutResult) -> None:
        """Enqueue the audience in batches instead of posting."""
        if not self.config.queue_url:
            raise ConfigError("FANOUT_QUEUE_URL", "sqs_batched needs the URL of its queue")
        sender = _BatchSender(self.client, self.config.queue_url, result)
        endpoint: str | None = None
        ids: list[str] = []
        for page in pages:
            result.add_page(page)
            for target in page.targets:
                if ids and (target.endpoint != endpoint or len(ids) >= self.targets_per_message):
                    sender.add(Batch(data, endpoint or "", tuple(ids)))
                    ids = []
                endpoint = target.endpoint
                ids.append(target.connection_id)
        if ids:
            sender.add(Batch(data, endpoint or "", tuple(ids)))
        sender.flush()


class _BatchSender:
    """Packs messages into SendMessageBatch calls; retries the entries SQS refuses."""

    def __init__(self, client: Any, queue_url: str, result: FanoutResult) -> None:
        self.client = client
        self.queue_url = queue_url
        self.result = result
        self.entries: list[tuple[dict[str, str], int]] = []
        self.pending_bytes = 0

    def add(self, batch: Batch) -> None:
        body = batch.encode()
        size = len(body.encode())
        if self.entries and (
            len(self.entries) >= MAX_ENTRIES_PER_CALL
            or self.pending_bytes + size > MAX_BYTES_PER_CALL
        ):
            self.flush()
        entry = {"Id": str(len(self.entries)), "MessageBody": body}
        self.entries.append((entry, len(batch.connection_ids)))
        self.pending_bytes += size

    def flush(self) -> None:
        pending = self.entries
        self.entries, self.pending_bytes = [], 0
        for attempt in range(1, SEND_ATTEMPTS + 1):
            if not pending:
                return
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
            pending = list(by_id.values())
            if pending and attempt < SEND_ATTEMPTS:
                time.sleep(random.uniform(0, 0.05 * 2**attempt))
        if pending:
            raise RuntimeError(f"SQS did not take {len(pending)} messages after retries")


def process_records(
    event: Mapping[str, Any], deliverer: Deliverer
) -> tuple[dict[str, list[dict[str, str]]], list[FanoutResult]]:
    """Post every record of an SQS event; the partial-batch response and per-record counts.

    A record is reported failed when one of its posts failed in a way a retry may fix
    (429, 5xx, timeout) or its body is unreadable (so it reaches the dead-letter queue).
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
