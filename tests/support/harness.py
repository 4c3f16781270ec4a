"""One harness for every test that drives the real handlers: a table, a queue, a runtime.

``Harness`` is a table on a backend with the local Management API and clients of its own
(outside the library and its injected faults). ``Harness.start`` builds and installs the
handlers' runtime over it, with a fresh SQS queue and the local event source for
``sqs_batched``. ``Chat`` drives clients through the handlers on a started harness: clients
are ids registered in the local Management API; a silent drop closes the id there without a
``$disconnect``, so the next post answers 410 as on AWS.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import boto3

from fanout_core import handlers
from fanout_core.config import FanoutConfig
from fanout_core.local.management_api import LocalManagementApi
from fanout_core.local.sqs_pump import SqsEventSource, SqsHandler
from fanout_core.policy import Policy
from fanout_core.runtime import Runtime, build_runtime, set_runtime
from tests.support import frames, tables
from tests.support.backends import Backend
from tests.support.clock import FakeClock
from tests.support.events import connect_event, disconnect_event, message_event

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

Rows = dict[tuple[str, str], int]  # (connection id, sk) -> expires_at


@dataclass
class Harness:
    """A table, the local Management API, and the runtime the handlers use over them."""

    backend: Backend
    api: LocalManagementApi
    config: FanoutConfig
    reader: DynamoDBClient
    sqs: SQSClient
    install: Callable[[Runtime], None] | None = None  # swaps in a (buggy) strategy
    concurrency: int | None = None  # fixed instead of drawn (1: replays are deterministic)
    runtime: Runtime | None = None
    pump: SqsEventSource | None = None
    queue_url: str | None = None

    @property
    def sqs_endpoint(self) -> str | None:
        return self.config.sqs_endpoint

    def start(
        self,
        clock: FakeClock,
        *,
        worker: SqsHandler = handlers.sqs_worker,
        visibility_timeout: int = 0,
        policy: Policy | None = None,
        **overrides: Any,
    ) -> Runtime:
        """Build and install the handlers' runtime; for sqs_batched, a new queue and its pump.

        A visibility timeout of 0 brings a failed or crashed batch back at the next poll.
        """
        if self.config.strategy == "sqs_batched":
            self.queue_url = self.sqs.create_queue(
                QueueName=f"q-{uuid.uuid4().hex[:12]}",
                Attributes={"VisibilityTimeout": str(visibility_timeout)},
            )["QueueUrl"]
        if self.concurrency is not None:
            overrides["concurrency"] = self.concurrency
        config = dataclasses.replace(self.config, queue_url=self.queue_url, **overrides)
        self.runtime = build_runtime(config, clock=clock, policy=policy)
        if self.runtime.tasks is not None:
            self.runtime.tasks.requeue_delay = 0  # a drain must see a requeued batch at once
        if self.install is not None:
            self.install(self.runtime)
        set_runtime(self.runtime)
        if self.queue_url is not None:
            self.pump = SqsEventSource(self.sqs, self.queue_url, worker)
        return self.runtime

    def stop(self) -> None:
        """Uninstall and close the runtime; delete the queue. The table stays."""
        if self.runtime is not None:
            set_runtime(None)
            self.runtime.close()
            self.runtime = None
        if self.queue_url is not None:
            self.sqs.delete_queue(QueueUrl=self.queue_url)
            self.queue_url = None
            self.pump = None

    def rows(self) -> Rows:
        """Every row of the table, read consistently through ``reader``: a connection's by
        its id, the others (history, counters, idempotency keys) by their pk."""
        return {
            (
                item["connection_id"]["S"] if "connection_id" in item else item["pk"]["S"],
                item["sk"]["S"],
            ): int(item["expires_at"]["N"])
            for item in tables.items(self.reader, self.config.table)
        }

    def wipe(self) -> None:
        """Delete every row, so the next run starts from an empty table."""
        tables.wipe(self.reader, self.config.table)

    def drop(self) -> None:
        """Stop, and delete the table where it outlives the test (a backend process), unless
        it is a pooled one (emptied after the test)."""
        self.stop()
        if self.backend.owns(self.config):
            self.reader.delete_table(TableName=self.config.table)


def new_harness(
    backend: Backend,
    api: LocalManagementApi,
    strategy: str,
    *,
    sqs_endpoint: str | None = None,
    install: Callable[[Runtime], None] | None = None,
    concurrency: int | None = None,
    **config: Any,
) -> Harness:
    """A harness over a new table on ``backend``, posting to ``api``."""
    table_config = backend.config(
        strategy=strategy,
        management_endpoint=f"{api.url}/prod",
        sqs_endpoint=sqs_endpoint,
        **config,
    )
    backend.ensure_table(table_config)
    return Harness(
        backend=backend,
        api=api,
        config=table_config,
        reader=boto3.client("dynamodb", region_name="us-east-1", endpoint_url=backend.endpoint),
        sqs=boto3.client("sqs", region_name="us-east-1", endpoint_url=sqs_endpoint),
        install=install,
        concurrency=concurrency,
    )


@dataclass
class Chat:
    """Clients, the handlers, and what each client received."""

    harness: Harness
    clock: FakeClock
    clients: list[str] = field(default_factory=list)
    # What the authorizer bound to each client: API Gateway repeats it in every event.
    identities: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def runtime(self) -> Runtime:
        assert self.harness.runtime is not None
        return self.harness.runtime

    @property
    def api(self) -> LocalManagementApi:
        return self.harness.api

    @property
    def pump(self) -> SqsEventSource | None:
        return self.harness.pump

    @pump.setter
    def pump(self, pump: SqsEventSource | None) -> None:
        self.harness.pump = pump

    def connect(
        self,
        rooms: list[str] | None = None,
        *,
        principal: str | None = None,
        claims: dict[str, Any] | None = None,
    ) -> str:
        """A new client, with its authorizer's principal and context if given."""
        cid = self.api.connections.open()
        event = connect_event(cid, rooms=rooms, principal=principal, claims=claims)
        response = handlers.connect(event, None)
        assert response == {"statusCode": 200}, response
        self.clients.append(cid)
        if principal is not None or claims:
            self.identities[cid] = {"principalId": principal, **(claims or {})}
        return cid

    def call(self, cid: str, body: Any) -> dict[str, Any]:
        """Send one WebSocket message through the single-entry router, with its identity."""
        event = message_event(cid, body)
        if cid in self.identities:
            event["requestContext"]["authorizer"] = dict(self.identities[cid])
        response = handlers.websocket(event, None)
        if self.pump is not None:
            self.pump.drain()
        return response

    def send(self, cid: str, text: str, room: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"action": "sendMessage", "text": text}
        if room is not None:
            body["room"] = room
        return self.call(cid, body)

    def disconnect(self, cid: str) -> None:
        self.api.connections.close(cid)
        assert handlers.disconnect(disconnect_event(cid), None) == {"statusCode": 200}

    def drop(self, cid: str) -> None:
        """The client vanishes; API Gateway never calls $disconnect. Time passes, past
        ``FANOUT_CONNECTING_SECONDS``: a 410 from a connection younger deletes nothing."""
        self.api.connections.close(cid)
        self.clock.advance(self.runtime.config.connecting_seconds + 1)

    def frames(self, cid: str) -> list[dict[str, Any]]:
        return [frames.decode(raw) for raw in self.api.connections.inbox(cid)]

    def texts(self, cid: str) -> list[str]:
        return [frame["body"] for frame in self.frames(cid)]

    def table(self) -> list[tuple[str, str, int]]:
        """Every row: (its pk, sk, expiry), sorted."""
        return sorted((r.pk, r.sk, int(r.expires_at)) for r in self.runtime.store.rows())

    def row_ids(self) -> set[str]:
        """The connections that have rows (history, counters and keys have none)."""
        rows = self.runtime.store.rows()
        return {row.connection_id for row in rows if row.connection_id is not None}


def make_chat(
    backend: Backend,
    api: LocalManagementApi,
    clock: FakeClock,
    strategy: str,
    *,
    sqs_endpoint: str | None = None,
    page_size: int = 2,
    visibility_timeout: int = 1,
    policy: Policy | None = None,
    **overrides: Any,
) -> Chat:
    """A chat on a new table: the runtime the handlers will use, started."""
    harness = new_harness(backend, api, strategy, sqs_endpoint=sqs_endpoint)
    harness.start(
        clock,
        visibility_timeout=visibility_timeout,
        policy=policy,
        page_size=page_size,
        concurrency=overrides.pop("concurrency", 4),
        **overrides,
    )
    return Chat(harness, clock)
