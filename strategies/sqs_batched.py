"""sqs_batched: resolve the audience by query, hand it to SQS workers in batches.

The queue message format, the batch sender and the worker (``sqs_worker``) are the core's,
in ``fanout_core.queue``; this strategy only packs the audience into batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from fanout_core.audience import Page
from fanout_core.config import FanoutConfig
from fanout_core.delivery import Deliverer
from fanout_core.errors import ConfigError
from fanout_core.queue import TARGETS_PER_MESSAGE, Batch, BatchSender, sqs_client
from fanout_core.result import FanoutResult
from fanout_core.store import ConnectionStore
from strategies.gsi_query import GsiQuery

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


class SqsBatched(GsiQuery):
    """Query the audience index; enqueue the ids for the ``sqs_worker`` handler."""

    name = "sqs_batched"

    def __init__(
        self,
        store: ConnectionStore,
        deliverer: Deliverer,
        config: FanoutConfig,
        *,
        client: SQSClient | None = None,
        targets_per_message: int = TARGETS_PER_MESSAGE,
    ) -> None:
        super().__init__(store, deliverer, config)
        self._client = client
        self.targets_per_message = targets_per_message

    @property
    def client(self) -> SQSClient:
        """The SQS client, built on first use."""
        if self._client is None:
            self._client = sqs_client(self.config)
        return self._client

    def dispatch(self, pages: Iterator[Page], data: bytes, result: FanoutResult) -> None:
        """Enqueue the audience in batches of one endpoint's ids instead of posting."""
        if not self.config.queue_url:
            raise ConfigError("FANOUT_QUEUE_URL", "sqs_batched needs the URL of its queue")
        sender = BatchSender(self.client, self.config.queue_url, result)
        endpoint: str | None = None
        ids: list[str] = []
        for page in pages:
            for target in page.targets:
                if ids and (target.endpoint != endpoint or len(ids) >= self.targets_per_message):
                    sender.add(Batch(data, endpoint or "", tuple(ids)))
                    ids = []
                endpoint = target.endpoint
                ids.append(target.connection_id)
        if ids:
            sender.add(Batch(data, endpoint or "", tuple(ids)))
        sender.flush()
