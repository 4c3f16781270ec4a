"""sqs_batched: a fan-out tree on SQS, for audiences too big for one invocation.

The sending invocation enqueues one read task per audience partition (a room's, a user's,
each everyone-shard) and returns, in a time that does not depend on the audience's size.
Workers (the ``sqs_worker`` handler) read a page each and hand the rest on
(``fanout_core.worker``). Chosen connections are read here, by their rows, and enqueued as
post batches. The message format and the worker side are the core's (``fanout_core.queue``
and ``fanout_core.worker``); this strategy only decides what to enqueue.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from fanout_core import keys
from fanout_core.audience import Audience, Page, targets_of
from fanout_core.config import FanoutConfig
from fanout_core.errors import ConfigError
from fanout_core.result import FanoutResult
from fanout_core.strategy import FanoutStrategy

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

    from fanout_core.delivery import Deliverer
    from fanout_core.queue import BatchSender
    from fanout_core.store import ConnectionStore
    from fanout_core.worker import TaskRunner

# Connection ids in one post batch: fanout_core.queue.TARGETS_PER_MESSAGE, which this module
# does not import at load (the registry loads it for every handler, $connect included).
TARGETS_PER_MESSAGE = 100


class SqsBatched(FanoutStrategy):
    """Enqueue read tasks for the ``sqs_worker`` handler; it reads and posts."""

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
        self._runner: TaskRunner | None = None

    @property
    def client(self) -> SQSClient:
        """The SQS client, built on first use."""
        if self._client is None:
            from fanout_core.queue import sqs_client

            self._client = sqs_client(self.config)
        return self._client

    def sender(self, result: FanoutResult) -> BatchSender:
        """A batch sender to this strategy's queue, counting in ``result``."""
        from fanout_core.queue import BatchSender

        if not self.config.queue_url:
            raise ConfigError("FANOUT_QUEUE_URL", "sqs_batched needs the URL of its queue")
        return BatchSender(self.client, self.config.queue_url, result)

    def audience_pages(self, room: str | None) -> Iterator[Page]:
        """What the workers read: the room's index partition, or every everyone-shard."""
        if room is not None:
            return self.store.room_pages(room, page_size=self.config.page_size)
        return self.store.everyone_pages(page_size=self.config.page_size)

    def run(self, audience: Audience, data: bytes, result: FanoutResult) -> None:
        """One read task per partition of the audience; chosen connections by their rows."""
        from fanout_core.queue import ReadTask

        if audience.connections is not None:
            super().run(audience, data, result)
            return
        sender = self.sender(result)
        exclude = tuple(sorted(audience.exclude))
        for partition in partitions(audience):
            sender.add(ReadTask(data, partition, exclude=exclude, message_id=result.message_id))
        sender.flush()

    def dispatch(self, pages: Iterator[Page], data: bytes, result: FanoutResult) -> None:
        """Enqueue the connections read in batches of one endpoint's ids instead of posting."""
        from fanout_core.queue import pack

        sender = self.sender(result)
        batches = pack(targets_of(pages), data, self.targets_per_message, result.message_id)
        for batch in batches:
            sender.add(batch)
        sender.flush()

    def task_runner(self) -> TaskRunner:
        """The worker side: read tasks and post batches from this strategy's queue."""
        from fanout_core.worker import TaskRunner

        if self._runner is None:
            self._runner = TaskRunner(
                self.store,
                self.sender,
                page_size=self.config.page_size,
                per_message=self.targets_per_message,
            )
        return self._runner


def partitions(audience: Audience) -> list[str]:
    """The audience index partitions of a room, a user, or everyone (its shards)."""
    if audience.room is not None:
        return [keys.room_index_pk(audience.room)]
    if audience.user is not None:
        return [keys.user_index_pk(audience.user)]
    return [keys.everyone_index_pk(shard) for shard in range(keys.EVERYONE_SHARDS)]
