"""A chat driven through the real handlers: the store on a backend, posts over real HTTP.

Clients are ids registered in the local Management API; a silent drop closes the id there
without a ``$disconnect``, so the next post answers 410 as on AWS.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import boto3

from fanout_core import handlers
from fanout_core.local.management_api import LocalManagementApi
from fanout_core.local.sqs_pump import SqsEventSource
from fanout_core.runtime import Runtime, build_runtime, set_runtime
from tests.clock import FakeClock
from tests.conftest import Backend
from tests.events import connect_event, disconnect_event, message_event


@dataclass
class Chat:
    """Clients, the handlers, and what each client received."""

    runtime: Runtime
    api: LocalManagementApi
    clock: FakeClock
    pump: SqsEventSource | None = None
    clients: list[str] = field(default_factory=list)

    def connect(self, rooms: list[str] | None = None) -> str:
        cid = self.api.connections.open()
        response = handlers.connect(connect_event(cid, rooms=rooms), None)
        assert response == {"statusCode": 200}, response
        self.clients.append(cid)
        return cid

    def call(self, cid: str, body: Any) -> dict[str, Any]:
        """Send one WebSocket message through the single-entry router."""
        response = handlers.websocket(message_event(cid, body), None)
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
        """The client vanishes; API Gateway never calls $disconnect."""
        self.api.connections.close(cid)

    def frames(self, cid: str) -> list[dict[str, Any]]:
        return [json.loads(raw) for raw in self.api.connections.inbox(cid)]

    def texts(self, cid: str) -> list[str]:
        return [frame["body"] for frame in self.frames(cid)]

    def row_ids(self) -> set[str]:
        return {row.connection_id for row in self.runtime.store.rows()}


def make_chat(
    backend: Backend,
    api: LocalManagementApi,
    clock: FakeClock,
    strategy: str,
    *,
    sqs_endpoint: str | None = None,
    page_size: int = 2,
    visibility_timeout: int = 1,
    **overrides: Any,
) -> Chat:
    """Build the runtime the handlers will use, on a fresh table."""
    from fanout_core.table import create_table

    queue_url = None
    client = None
    if strategy == "sqs_batched":
        assert sqs_endpoint is not None
        client = boto3.client("sqs", endpoint_url=sqs_endpoint, region_name="us-east-1")
        queue_url = client.create_queue(
            QueueName=f"q-{uuid.uuid4().hex[:10]}",
            Attributes={"VisibilityTimeout": str(visibility_timeout)},
        )["QueueUrl"]
    config = backend.config(
        strategy=strategy,
        page_size=page_size,
        concurrency=overrides.pop("concurrency", 4),
        management_endpoint=f"{api.url}/prod",
        queue_url=queue_url,
        sqs_endpoint=sqs_endpoint,
        **overrides,
    )
    create_table(config)
    runtime = build_runtime(config, clock=clock)
    set_runtime(runtime)
    pump = None
    if client is not None and queue_url is not None:
        pump = SqsEventSource(client, queue_url, handlers.sqs_worker)
    return Chat(runtime, api, clock, pump)
