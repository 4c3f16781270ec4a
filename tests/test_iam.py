"""The template's least-privilege policies cover exactly what each handler really calls.

Each handler runs through its paths (410 cleanup included) on every strategy while a
botocore hook records the DynamoDB and SQS operations it makes; every recorded call must
be allowed by the template's policy for that function (tests/test_template.py checks the
template against EXPECTED_ACTIONS).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

from fanout_core import handlers
from fanout_core.config import RateLimit
from fanout_core.deploy.permissions import PUBLISHER as PUBLISHER_ACTIONS
from fanout_core.deploy.permissions import grants
from fanout_core.fanout import Fanout
from fanout_core.local.management_api import LocalManagementApi
from tests.support.backends import STRATEGIES, Backend
from tests.support.clock import FakeClock
from tests.support.events import connect_event, disconnect_event, message_event
from tests.support.harness import Chat, make_chat
from tests.support.strategy_classes import SqsBatched

# Calls the event source mapping makes for the worker, not the worker's own code.
_SQS_ACTION = {"SendMessageBatch": "SendMessage", "SendMessage": "SendMessage"}


class Recorder:
    """Which operations (and on which index) each handler made."""

    def __init__(self) -> None:
        self.current = ""
        self.calls: dict[str, set[tuple[str, bool]]] = defaultdict(set)

    def hook(self, model: Any, params: dict[str, Any], **kwargs: Any) -> None:
        service = model.service_model.service_name
        operation = model.name
        if service == "sqs":
            operation = _SQS_ACTION.get(operation, operation)
        on_index = bool(params.get("IndexName"))
        self.calls[self.current].add((f"{service}:{operation}", on_index))

    def run(self, name: str, event: dict[str, Any]) -> Any:
        self.current = name
        try:
            return getattr(handlers, name)(event, None)
        finally:
            self.current = ""


def drain_as_worker(chat: Chat, recorder: Recorder) -> None:
    """Run the SQS worker over what was enqueued, recording as `sqs_worker`."""
    if chat.pump is not None:
        recorder.current = "sqs_worker"
        try:
            chat.pump.drain()
        finally:
            recorder.current = ""


@pytest.mark.parametrize(
    "settings", ["defaults", "presence events, both rate limits, history, a connections cap"]
)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_handlers_call_only_what_their_policy_allows(
    strategy: str,
    settings: str,
    local_api: LocalManagementApi,
    clock: FakeClock,
    moto_server_url: str,
    dynalite_url: str,
) -> None:
    extras = settings != "defaults"
    chat: Chat = make_chat(
        Backend("dynalite", dynalite_url),
        local_api,
        clock,
        strategy,
        sqs_endpoint=moto_server_url,
        presence_events=extras,
        rate_limit=RateLimit(100, 1) if extras else None,
        user_rate_limit=RateLimit(100, 1) if extras else None,
        max_connections_per_user=10 if extras else None,
        history_seconds=600 if extras else 0,
    )
    recorder = Recorder()
    client = chat.runtime.store.models.client
    client.meta.events.register("before-parameter-build.dynamodb", recorder.hook)
    updated: dict[str, set[str]] = defaultdict(set)  # handler -> partitions UpdateItem touched
    client.meta.events.register(
        "before-parameter-build.dynamodb.UpdateItem",
        lambda params, **_: updated[recorder.current].add(params["Key"]["pk"]["S"]),
    )
    if isinstance(chat.runtime.strategy, SqsBatched):
        sqs = chat.runtime.strategy.client
        sqs.meta.events.register("before-parameter-build.sqs", recorder.hook)

    ids = [local_api.connections.open() for _ in range(4)]
    a, b, c, d = ids
    principal = "alice" if extras else None  # the principal's bucket and connections cap
    for cid in ids:
        event = connect_event(cid, rooms=["r"], principal=principal)
        assert recorder.run("connect", event) == {"statusCode": 200}
    join = message_event(a, {"action": "joinRoom", "room": "s"})
    assert recorder.run("join_room", join)["statusCode"] == 200  # its position, history on
    leave = message_event(a, {"action": "leaveRoom", "room": "s"})
    assert recorder.run("leave_room", leave) == {"statusCode": 200}
    assert recorder.run("ping", message_event(a, {"action": "ping"})) == {"statusCode": 200}
    assert recorder.run("default", message_event(a, {"action": "x"}))["statusCode"] == 400
    ask = message_event(a, {"action": "presence", "room": "r"})
    assert recorder.run("presence", ask) == {"statusCode": 200}
    drain_as_worker(chat, recorder)

    chat.clock.advance(chat.runtime.config.connecting_seconds)  # old enough to delete
    local_api.connections.close(b)  # gone: the room fan-out meets 410
    local_api.connections.close(c)  # gone: the everyone fan-out meets 410
    to_room = message_event(a, {"action": "sendMessage", "text": "r", "room": "r"})
    to_all = message_event(a, {"action": "sendMessage", "text": "all"})
    assert recorder.run("send_message", to_room) == {"statusCode": 200}
    drain_as_worker(chat, recorder)
    assert recorder.run("send_message", to_all) == {"statusCode": 200}
    drain_as_worker(chat, recorder)
    assert chat.row_ids() == {a, d}
    keyed = message_event(a, {"action": "sendMessage", "text": "k", "room": "r", "id": "k"})
    for _ in range(2):  # the second is a duplicate: it reads the first's message id
        assert recorder.run("send_message", keyed) == {"statusCode": 200}
        drain_as_worker(chat, recorder)
    resume = message_event(a, {"action": "history", "room": "r", "since": 0})
    assert recorder.run("history", resume)["statusCode"] == (200 if extras else 400)

    assert recorder.run("disconnect", disconnect_event(d)) == {"statusCode": 200}
    clock.advance(chat.runtime.config.ttl_seconds + 1)
    assert recorder.run("sweep", {}) == {"connections": 1, "memberships": 1}

    recorder.calls.pop("", None)  # the test's own reads
    expected = grants(
        presence_events=extras,
        rate_limit=extras,
        history=extras,
        user_rate_limit=extras,
        max_connections=extras,
    )
    for handler, calls in recorder.calls.items():
        allowed = expected[handler]
        for action, on_index in calls:
            assert action in allowed, f"{handler} calls {action}, which its policy denies"
            if on_index:
                assert any("index" in str(r) for r in allowed[action]), (
                    f"{handler} calls {action} on the index, which its policy denies"
                )
    for handler, partitions in updated.items():
        # A grant narrowed to partitions ("table SEQ#*") allows those only.
        names = expected[handler]["dynamodb:UpdateItem"]
        prefixes = tuple(name.split(" ", 1)[1].rstrip("*") for name in names if " " in name)
        if "table" not in names:
            assert all(pk.startswith(prefixes) for pk in partitions), (handler, partitions)
    # The run exercised every path it claims to (the check above is not vacuous).
    made = {h: {a for a, _ in calls} for h, calls in recorder.calls.items()}
    assert "dynamodb:BatchWriteItem" in made["connect"]
    assert {"dynamodb:Query", "dynamodb:PutItem"} <= made["join_room"]
    assert "dynamodb:UpdateItem" in made["ping"]
    assert "default" not in made
    assert {"dynamodb:GetItem", "dynamodb:BatchGetItem"} <= made["presence"]
    assert {"dynamodb:PutItem", "dynamodb:GetItem"} <= made["send_message"]  # the key
    if extras:
        assert "dynamodb:UpdateItem" in made["send_message"]  # the bucket, the counter
        assert {"dynamodb:GetItem", "dynamodb:Query"} <= made["history"]
        assert "dynamodb:UpdateItem" in made["history"]  # the bucket
        # A member's position: the room's counter, read, and started where it had none.
        for handler in ("connect", "join_room"):
            assert {"dynamodb:GetItem", "dynamodb:UpdateItem"} <= made[handler]
        # Every repeatable action's tokens, and the principal's connections counted.
        for handler in ("join_room", "leave_room", "presence", "ping"):
            assert "dynamodb:UpdateItem" in made[handler], handler
        assert ("dynamodb:Query", True) in recorder.calls["connect"]
        assert any(pk.startswith("RATE#USER#") for pk in updated["connect"])
        # presence.join / presence.leave fan-outs from the handlers that see joins and leaves:
        # each reads the room (a room nobody else is in is posted nothing).
        # (sqs_batched's handlers only enqueue the room's read task: the worker reads it.)
        scans = strategy in ("full_scan", "parallel_scan")
        fanned = "dynamodb:Scan" if scans else "dynamodb:Query"
        if strategy == "sqs_batched":
            fanned = "sqs:SendMessage"
        for handler in ("connect", "join_room", "leave_room", "disconnect"):
            assert fanned in made[handler], (handler, made[handler])
    cleanup = made["sqs_worker"] if chat.pump is not None else made["send_message"]
    assert {"dynamodb:DeleteItem", "dynamodb:Query", "dynamodb:BatchWriteItem"} <= cleanup
    if strategy == "sqs_batched":
        assert "sqs:SendMessage" in made["send_message"]
        # The fan-out tree: a worker reads its partition's page on the index.
        assert ("dynamodb:Query", True) in recorder.calls["sqs_worker"]
        assert "sqs:SendMessage" in made["sqs_worker"]  # the next page's task
    elif strategy == "gsi_query":
        assert ("dynamodb:Query", True) in recorder.calls["send_message"]
    else:
        assert "dynamodb:Scan" in made["send_message"]


@pytest.mark.parametrize("history", [0, 600], ids=["history off", "history on"])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_publisher_calls_only_what_publisher_policy_allows(
    strategy: str,
    history: int,
    local_api: LocalManagementApi,
    clock: FakeClock,
    moto_server_url: str,
    dynalite_url: str,
) -> None:
    """Fanout.publish to every audience (410 cleanup included), members, disconnect_user."""
    chat: Chat = make_chat(
        Backend("dynalite", dynalite_url),
        local_api,
        clock,
        strategy,
        sqs_endpoint=moto_server_url,
        history_seconds=history,
    )
    recorder = Recorder()
    updated: list[str] = []  # the partitions UpdateItem touched: only counters' may be
    client = chat.runtime.store.models.client
    client.meta.events.register("before-parameter-build.dynamodb", recorder.hook)
    if isinstance(chat.runtime.strategy, SqsBatched):
        sqs = chat.runtime.strategy.client
        sqs.meta.events.register("before-parameter-build.sqs", recorder.hook)
    ids = [local_api.connections.open() for _ in range(6)]
    for n, cid in enumerate(ids):
        event = connect_event(cid, rooms=["r"], principal="alice" if n < 3 else "bob")
        assert handlers.connect(event, None) == {"statusCode": 200}
    fanout = Fanout(runtime=chat.runtime)
    recorder.current = "publisher"
    publishes: list[tuple[str, dict[str, Any]]] = [
        (ids[0], {"room": "r"}),
        (ids[1], {"user": "alice"}),
        (ids[3], {"connections": [ids[3], ids[4]]}),
        (ids[4], {}),
    ]
    client.meta.events.register(
        "before-parameter-build.dynamodb.UpdateItem",
        lambda params, **_: updated.append(params["Key"]["pk"]["S"]),
    )
    chat.clock.advance(chat.runtime.config.connecting_seconds)  # old enough to delete
    for n, (gone, audience) in enumerate(publishes):
        local_api.connections.close(gone)  # each publish meets a 410 and deletes a row
        recorder.current = "publisher"
        fanout.publish({"n": 1}, idempotency_key=f"k{n}", **audience)
        fanout.publish({"n": 1}, idempotency_key=f"k{n}", **audience)  # a duplicate
        drain_as_worker(chat, recorder)
    if history:
        assert [frame["data"] for frame in fanout.history("r")] == [{"n": 1}]
    recorder.current = "publisher"
    # Left in r: alice's ids[2] and bob's ids[5] (the publishes deleted the other four).
    assert sorted(m.principal or "" for m in fanout.members("r")) == ["alice", "bob"]
    assert fanout.disconnect_user("bob").connections == 1
    recorder.current = ""

    made = recorder.calls["publisher"]
    for action, on_index in made:
        assert action in PUBLISHER_ACTIONS, f"Fanout calls {action}, which PublisherPolicy denies"
        if on_index:
            assert "index" in PUBLISHER_ACTIONS[action], f"{action} on the index is denied"
    names = {action for action, _ in made}
    assert {"dynamodb:BatchGetItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"} <= names
    assert {"dynamodb:PutItem", "dynamodb:GetItem"} <= names  # keys, and a duplicate's id
    assert all(pk.startswith("SEQ#") for pk in updated), updated
    assert bool(updated) is bool(history)
    assert ("dynamodb:Query", True) in made  # members, and users on every strategy
    if strategy == "sqs_batched":
        assert "sqs:SendMessage" in names
    elif strategy in ("full_scan", "parallel_scan"):
        assert "dynamodb:Scan" in names
