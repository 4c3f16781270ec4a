"""What Lambda's SQS event source mapping does, for local runs: poll, invoke, delete, redeliver.

Records reported in ``batchItemFailures`` (or all of a batch whose handler raised) stay
on the queue and come back after the visibility timeout, as on AWS.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

log = logging.getLogger(__name__)

SqsHandler = Callable[[dict[str, Any], Any], Any]


def queue_arn(queue_url: str, region: str) -> str:
    """A plausible ARN for a queue URL (``.../{account}/{name}``)."""
    parts = queue_url.rstrip("/").split("/")
    return f"arn:aws:sqs:{region}:{parts[-2]}:{parts[-1]}"


class SqsEventSource:
    """Polls ``queue_url`` and invokes ``handler`` with SQS events of up to ``batch_size``."""

    def __init__(
        self,
        client: SQSClient,
        queue_url: str,
        handler: SqsHandler,
        *,
        batch_size: int = 10,
        region: str = "us-east-1",
    ) -> None:
        self.client = client
        self.queue_url = queue_url
        self.handler = handler
        self.batch_size = batch_size
        self.arn = queue_arn(queue_url, region)
        self.region = region
        self.invocations = 0
        self.deleted = 0
        self.failed = 0
        self._failed_receipts: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll_once(self, *, wait_seconds: int = 0) -> int:
        """Receive one batch, invoke the handler, delete what succeeded; the batch size."""
        response = self.client.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=wait_seconds,
            MessageSystemAttributeNames=["All"],
        )
        messages = response.get("Messages", [])
        if not messages:
            return 0
        event = {"Records": [self._record(m) for m in messages]}
        self.invocations += 1
        try:
            answer = self.handler(event, None)
            failed_ids = {
                item["itemIdentifier"] for item in (answer or {}).get("batchItemFailures", [])
            }
        except Exception:
            log.exception("SQS handler raised: the whole batch will be redelivered")
            failed_ids = {m["MessageId"] for m in messages}
        done = [m for m in messages if m["MessageId"] not in failed_ids]
        self.failed += len(messages) - len(done)
        self._failed_receipts.extend(
            m["ReceiptHandle"] for m in messages if m["MessageId"] in failed_ids
        )
        if done:
            self.client.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)
                ],
            )
            self.deleted += len(done)
        return len(messages)

    def drain(self, *, max_polls: int = 10_000) -> int:
        """Poll until a receive comes back empty; returns messages received."""
        total = 0
        for _ in range(max_polls):
            received = self.poll_once()
            if not received:
                break
            total += received
        return total

    def release_failed(self) -> int:
        """Make the failed messages visible now, as their visibility timeout would."""
        released, self._failed_receipts = self._failed_receipts, []
        for receipt in released:
            self.client.change_message_visibility(
                QueueUrl=self.queue_url, ReceiptHandle=receipt, VisibilityTimeout=0
            )
        return len(released)

    def start(self) -> None:
        """Poll on a background thread (long polling), as the event source mapping does."""

        def run() -> None:
            while not self._stop.is_set():
                try:
                    self.poll_once(wait_seconds=1)
                except Exception:
                    log.exception("SQS poll failed")
                    self._stop.wait(1.0)

        self._thread = threading.Thread(target=run, name="fanout-sqs-pump", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _record(self, message: MessageTypeDef) -> dict[str, Any]:
        # The record shape Lambda documents for SQS events.
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": message.get("MessageAttributes", {}),
            "md5OfBody": message.get("MD5OfBody", ""),
            "eventSource": "aws:sqs",
            "eventSourceARN": self.arn,
            "awsRegion": self.region,
        }
