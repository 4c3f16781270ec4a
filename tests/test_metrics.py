"""Metrics: one valid EMF document per invocation, its counts the invocation's, nothing on
stdout when off; the documents within EMF's limits however much an invocation did."""

from __future__ import annotations

import copy
import json
import random
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from fanout_core import emf, handlers, metrics
from fanout_core.answers import answers, ok
from fanout_core.config import FanoutConfig, RateLimit
from fanout_core.errors import ConfigError
from fanout_core.fanout import Fanout
from fanout_core.local.management_api import LocalManagementApi
from tests.support import emf_spec
from tests.support.backends import Backend
from tests.support.capacity_proxy import capacity_proxy
from tests.support.clock import FakeClock
from tests.support.events import connect_event, message_event
from tests.support.harness import Chat, make_chat


class Captured:
    """Every invocation's documents, through the sink a local tool would install."""

    def __init__(self) -> None:
        self.invocations: list[tuple[str, list[dict[str, Any]]]] = []
        self.lock = threading.Lock()

    def __call__(self, lines: Sequence[str], invocation: metrics.Invocation) -> None:
        with self.lock:
            self.invocations.append((invocation.source, [emf_spec.check(x) for x in lines]))

    def take(self) -> list[tuple[str, list[dict[str, Any]]]]:
        with self.lock:
            taken, self.invocations = self.invocations, []
        return taken

    def one(self, source: str) -> dict[str, Any]:
        """The only invocation since the last take: of ``source``, in one document."""
        [(found, documents)] = self.take()
        assert found == source
        [document] = documents
        assert document["Source"] == source
        values: dict[str, Any] = emf_spec.metrics_of(document)
        return values


@pytest.fixture
def captured() -> Iterator[Captured]:
    sink = Captured()
    previous = metrics.set_sink(sink)
    yield sink
    metrics.set_sink(previous)


@pytest.fixture
def chat(backend: Backend, local_api: LocalManagementApi, clock: FakeClock) -> Chat:
    return make_chat(
        backend, local_api, clock, "gsi_query", history_seconds=600, metrics="emf", service="svc"
    )


def test_every_handler_writes_one_document_with_what_it_did(chat: Chat, captured: Captured) -> None:
    a = chat.connect(["lobby"])
    connect = captured.one("connect")
    assert connect["Connects"] == 1
    assert connect["WriteUnits"] > 0
    b = chat.connect(["lobby"])
    captured.take()

    posts = chat.api.total("POST")
    assert chat.send(a, "hi", room="lobby")["statusCode"] == 200
    send = captured.one("send_message")
    assert send["Delivered"] == chat.api.total("POST") - posts == 2
    assert send["AudienceSize"] == [2]
    assert len(send["FanoutTime"]) == 1
    assert len(send["PostLatency"]) == 2
    assert send["ReadUnits"] > 0
    assert send["WriteUnits"] > 0
    assert "Gone" not in send
    assert "Failed" not in send

    chat.call(b, {"action": "joinRoom", "room": "other"})
    assert captured.one("join_room")["WriteUnits"] > 0
    chat.call(b, {"action": "ping"})
    assert captured.one("ping")["WriteUnits"] > 0
    chat.call(b, {"action": "history", "room": "lobby", "since": 0})
    history = captured.one("history")
    assert history["HistoryFrames"] == 1
    assert history["Delivered"] == 2  # the frame and history.end
    chat.call(b, {"action": "nonsense"})
    assert captured.one("default") == {"ClientErrors": 1}
    chat.call(b, {"action": "sendMessage", "room": "elsewhere", "text": "x"})
    denied = captured.one("send_message")
    assert (denied["Denied"], denied["ClientErrors"]) == (1, 1)

    chat.drop(b)
    chat.send(a, "to a gone one", room="lobby")
    gone = captured.one("send_message")
    assert (gone["Delivered"], gone["Gone"]) == (1, 1)
    assert gone["WriteUnits"] > 0  # the gone connection's rows deleted, on a cleanup thread

    chat.disconnect(a)
    assert captured.one("disconnect")["Disconnects"] == 1


def test_the_document_names_service_strategy_and_source(chat: Chat, captured: Captured) -> None:
    a = chat.connect(["lobby"])
    [(_, [connect])] = captured.take()
    # Counts of connections need no Source: one dimension set.
    assert [d["Dimensions"] for d in connect["_aws"]["CloudWatchMetrics"]] == [
        [["Service", "Strategy"]]
    ]
    chat.send(a, "hi", room="lobby")
    [(_, [document])] = captured.take()
    directives = document["_aws"]["CloudWatchMetrics"]
    assert {d["Namespace"] for d in directives} == {"fanout"}
    assert [d["Dimensions"] for d in directives] == [
        [["Service", "Strategy"]],
        [["Service", "Strategy", "Source"]],
    ]
    assert (document["Service"], document["Strategy"]) == ("svc", "gsi_query")
    by_source = {m["Name"] for m in directives[1]["Metrics"]}
    assert by_source == {"Delivered", "AudienceSize", "FanoutTime", "PostLatency"}
    units = {m["Name"]: m["Unit"] for d in directives for m in d["Metrics"]}
    assert units["FanoutTime"] == units["PostLatency"] == "Milliseconds"
    assert units["Delivered"] == units["ReadUnits"] == "Count"
    # Never a connection id, a room or a principal as a dimension: properties only.
    assert document["ConnectionId"] == a
    assert "lobby" not in json.dumps(document)
    assert all("ConnectionId" not in s for d in directives for s in d["Dimensions"])


def test_rate_limited_and_errors_are_counted(
    backend: Backend, local_api: LocalManagementApi, clock: FakeClock, captured: Captured
) -> None:
    chat = make_chat(
        backend, local_api, clock, "gsi_query", rate_limit=RateLimit(1, 60), metrics="emf"
    )
    a = chat.connect(["lobby"])
    chat.send(a, "one", room="lobby")
    captured.take()
    assert chat.send(a, "two", room="lobby")["statusCode"] == 429
    limited = captured.one("send_message")
    assert (limited["RateLimited"], limited["ClientErrors"]) == (1, 1)

    def broken(connection_id: str, *, partition: object = None) -> bool:
        raise RuntimeError("the table is on fire")

    chat.runtime.store.touch = broken  # type: ignore[method-assign]
    clock.advance(60)  # a ping costs a token too: the bucket is full again
    assert chat.call(a, {"action": "ping"})["statusCode"] == 500
    assert captured.one("ping")["Errors"] == 1


def test_publish_writes_its_results_counts(chat: Chat, captured: Captured) -> None:
    members = [chat.connect(["room"]) for _ in range(3)]
    chat.drop(members[0])
    captured.take()
    fanout = Fanout(runtime=chat.runtime)
    result = fanout.publish({"n": 1}, room="room", idempotency_key="k1")
    published = captured.one("publish")
    assert (published["Delivered"], published["Gone"]) == (result.delivered, result.gone) == (2, 1)
    assert published["AudienceSize"] == [3]
    assert published["FanoutTime"] == [round(result.elapsed_seconds * 1000, 3)]
    again = fanout.publish({"n": 1}, room="room", idempotency_key="k1")
    assert again.duplicate
    assert captured.one("publish")["Duplicates"] == 1


def test_a_publish_inside_a_handler_is_part_of_its_invocation(
    chat: Chat, captured: Captured
) -> None:
    chat.connect(["room"])
    captured.take()

    @answers
    def app_handler(event: Any) -> dict[str, Any]:
        Fanout(runtime=chat.runtime).publish("one", room="room")
        Fanout(runtime=chat.runtime).publish("two", room="room")
        return ok()

    app_handler({}, None)
    values = captured.one("app_handler")
    assert values["Delivered"] == 2
    assert len(values["FanoutTime"]) == 2


def test_concurrent_invocations_never_mix(chat: Chat, captured: Captured) -> None:
    for room, size in (("small", 1), ("big", 5)):
        for _ in range(size):
            chat.connect([room])
    captured.take()
    fanout = Fanout(runtime=chat.runtime)
    threads = [
        threading.Thread(target=fanout.publish, args=("x",), kwargs={"room": room})
        for room in ("small", "big") * 3
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    taken = captured.take()
    assert len(taken) == 6
    for _, [document] in taken:
        values = emf_spec.metrics_of(document)
        assert values["Delivered"] in (1, 5)
        assert values["AudienceSize"] == [values["Delivered"]]
        assert len(values["PostLatency"]) == values["Delivered"]


@pytest.mark.parametrize("backend", ["moto"], indirect=True)
def test_the_worker_writes_one_document_per_invocation(
    backend: Backend, local_api: LocalManagementApi, clock: FakeClock, captured: Captured
) -> None:
    chat = make_chat(backend, local_api, clock, "sqs_batched", metrics="emf")
    members = [chat.connect(["room"]) for _ in range(5)]
    captured.take()
    posts = chat.api.total("POST")
    chat.send(members[0], "hi", room="room")  # the pump drains the queue meanwhile
    taken = captured.take()
    sender = [documents for source, documents in taken if source == "send_message"]
    workers = [documents for source, documents in taken if source == "sqs_worker"]
    assert len(sender) == 1
    assert len(sender[0]) == 1
    assert "AudienceSize" not in sender[0][0]  # handed to read tasks: workers read it
    assert workers
    assert all(len(documents) == 1 for documents in workers)
    delivered = sum(documents[0].get("Delivered", 0) for documents in workers)
    assert delivered == chat.api.total("POST") - posts == 5
    assert sum(documents[0]["WorkerTasks"] for documents in workers) >= 1


FIXTURES = Path(__file__).parent / "support" / "fixtures"


def fixture(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return event


def test_publish_http_writes_one_document_with_its_results_counts(
    chat: Chat, captured: Captured
) -> None:
    a, b = chat.connect(["orders"]), chat.connect(["orders"])
    chat.drop(b)
    captured.take()
    event = fixture("function_url_request.json")
    event["body"], event["isBase64Encoded"] = json.dumps({"room": "orders", "data": 1}), False
    answer = handlers.publish_http(event, SimpleNamespace(aws_request_id="req-9"))
    result = json.loads(answer["body"])
    [(source, [document])] = captured.take()
    assert (source, document["RequestId"]) == ("publish_http", "req-9")
    values = emf_spec.metrics_of(document)
    assert (values["Delivered"], values["Gone"]) == (result["delivered"], result["gone"]) == (1, 1)
    assert values["AudienceSize"] == [2]
    assert len(values["PostLatency"]) == 2
    assert "ClientErrors" not in values
    event["body"] = json.dumps({"room": "orders", "data": 2, "nope": 3})
    assert handlers.publish_http(event)["statusCode"] == 400
    assert captured.one("publish_http") == {"ClientErrors": 1}
    assert chat.frames(a) == [chat.frames(a)[0]]  # the refused body posted nothing


def test_publish_events_writes_one_document_for_all_its_records(
    chat: Chat, captured: Captured
) -> None:
    chat.connect(["jobs"])
    chat.connect(["jobs"])
    captured.take()
    event = fixture("sqs_event.json")
    template = event["Records"][0]
    event["Records"] = []
    bodies = ('{"room": "jobs", "data": 1}', "not json", '{"room": "jobs"}', '{"data": 2}')
    for n, body in enumerate(bodies):  # the second and third refused: no JSON, no data
        record = copy.deepcopy(template)
        record["messageId"], record["body"] = f"m-{n}", body
        event["Records"].append(record)
    posts = chat.api.total("POST")
    answer = handlers.publish_events(event)
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-1"}, {"itemIdentifier": "m-2"}]}
    values = captured.one("publish_events")
    assert values["Delivered"] == chat.api.total("POST") - posts == 4
    assert len(values["AudienceSize"]) == len(values["FanoutTime"]) == 2
    assert values["ClientErrors"] == 2  # the two refused records
    assert "Errors" not in values


def test_the_schedules_write_one_document_each(chat: Chat, captured: Captured) -> None:
    members = [chat.connect(["lobby"]) for _ in range(3)]
    chat.disconnect(members[0])
    captured.take()
    assert handlers.open_connections(None, SimpleNamespace(aws_request_id="req-5")) == {
        "connections": 2
    }
    [(source, [document])] = captured.take()
    assert (source, document["RequestId"]) == ("open_connections", "req-5")
    gauge = emf_spec.metrics_of(document)
    assert gauge["OpenConnections"] == 2
    assert gauge["ReadUnits"] > 0  # the count reads every entry it counts
    handlers.sweep()
    assert "OpenConnections" not in captured.one("sweep")


def test_the_authorizer_writes_one_document_with_its_refusals(captured: Captured) -> None:
    # No methodArn: a Deny (403) before any token is read.
    refused = handlers.authorizer({"type": "REQUEST"}, SimpleNamespace(aws_request_id="r-1"))
    assert refused["policyDocument"]["Statement"][0]["Effect"] == "Deny"
    [(source, [document])] = captured.take()
    assert (source, document["RequestId"]) == ("authorizer", "r-1")
    assert emf_spec.metrics_of(document) == {"Denied": 1}


def test_metrics_off_write_nothing_to_stdout(
    backend: Backend,
    local_api: LocalManagementApi,
    clock: FakeClock,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "inside-lambda")  # on by default: off wins
    chat = make_chat(backend, local_api, clock, "gsi_query", metrics="off")
    a = chat.connect(["lobby"])
    chat.send(a, "hi", room="lobby")
    chat.call(a, {"action": "nonsense"})
    Fanout(runtime=chat.runtime).publish("x", room="lobby")
    chat.disconnect(a)
    assert capfd.readouterr().out == ""


def test_inside_lambda_documents_go_to_stdout_and_nothing_else(
    backend: Backend,
    local_api: LocalManagementApi,
    clock: FakeClock,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "fanout-SendMessage")
    chat = make_chat(backend, local_api, clock, "gsi_query")  # FANOUT_METRICS unset
    a = chat.connect(["lobby"])
    chat.send(a, "hi", room="lobby")
    lines = capfd.readouterr().out.splitlines()
    documents = [emf_spec.check(line) for line in lines]  # every line a document
    assert [d["Source"] for d in documents] == ["connect", "send_message"]
    assert {d["Service"] for d in documents} == {"fanout-SendMessage"}  # the function's name


def test_without_a_runtime_the_document_is_written_too(
    captured: Captured, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FANOUT_METRICS_NAMESPACE", "chat/prod")
    handlers.default(message_event("C1", {"action": "nope"}), None)
    [(source, [document])] = captured.take()
    assert source == "default"
    assert document["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "chat/prod"
    assert emf_spec.metrics_of(document) == {"ClientErrors": 1}
    handlers.connect(connect_event("C2", rooms=["bad#room"]), None)  # refused before a write
    assert captured.one("connect") == {"ClientErrors": 1}


# -- the settings -----------------------------------------------------------------------


def test_settings_are_read_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    assert not metrics.Settings.of(FanoutConfig.from_env({})).enabled
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "f")
    on = metrics.Settings.of(FanoutConfig.from_env({}))
    assert (on.enabled, on.service, on.namespace) == (True, "f", "fanout")
    env = {"FANOUT_METRICS": "OFF", "FANOUT_SERVICE": "chat", "FANOUT_METRICS_NAMESPACE": "a/b"}
    off = metrics.Settings.of(FanoutConfig.from_env(env))
    assert (off.enabled, off.service, off.namespace) == (False, "chat", "a/b")
    for variable, value in (
        ("FANOUT_METRICS", "prometheus"),
        ("FANOUT_METRICS_NAMESPACE", "AWS/Lambda"),
        ("FANOUT_METRICS_NAMESPACE", "has space"),
        ("FANOUT_SERVICE", "é"),
        ("FANOUT_LOG_LEVEL", "LOUD"),
    ):
        with pytest.raises(ConfigError, match=variable):
            FanoutConfig.from_env({variable: value})
    with pytest.raises(ConfigError, match="FANOUT_METRICS_NAMESPACE"):
        FanoutConfig(metrics_namespace="AWS/x")


# -- EMF's limits ------------------------------------------------------------------------


def _documents(values: dict[str, Any]) -> list[dict[str, Any]]:
    made = emf.documents(
        "ns",
        [emf.Directive([["Service"]], list(values))],
        {name: ("Count", value) for name, value in values.items()},
        {"Service": "s"},
        timestamp_ms=1_700_000_000_000,
    )
    return [emf_spec.check(json.dumps(document)) for document in made]


def test_more_than_100_values_go_into_several_documents() -> None:
    documents = _documents({"PostLatency": list(range(250)), "Delivered": 7})
    assert [len(d["PostLatency"]) for d in documents] == [100, 100, 50]
    assert [d.get("Delivered") for d in documents] == [7, None, None]  # counted once
    joined = [value for d in documents for value in d["PostLatency"]]
    assert joined == list(range(250))


def test_more_than_100_metrics_go_into_several_documents() -> None:
    documents = _documents({f"M{i}": i + 1 for i in range(150)})
    assert [len(emf_spec.metrics_of(d)) for d in documents] == [100, 50]
    with pytest.raises(ValueError, match="30"):
        emf.documents(
            "ns",
            [emf.Directive([list("abcdefghijklmnopqrstuvwxyz12345")], [])],
            {},
            {},
            timestamp_ms=0,
        )


def test_the_checker_refuses_what_the_specification_refuses() -> None:
    good = _documents({"Delivered": 1, "PostLatency": [1.5, 2.5]})[0]
    breakages: dict[str, Callable[[dict[str, Any]], object]] = {
        "no _aws": lambda d: d.pop("_aws"),
        "Timestamp": lambda d: d["_aws"].pop("Timestamp"),
        "a value at the root": lambda d: d.pop("Delivered"),
        "101 values": lambda d: d.update(PostLatency=list(range(101))),
        "unit": lambda d: d["_aws"]["CloudWatchMetrics"][0]["Metrics"][0].update(Unit="Cows"),
        "dimension without a value": lambda d: d.pop("Service"),
        "31 dimensions": lambda d: d["_aws"]["CloudWatchMetrics"][0].update(
            Dimensions=[[f"D{i}" for i in range(31)]]
        ),
        "a string value": lambda d: d.update(Delivered="1"),
        "extra member": lambda d: d["_aws"]["CloudWatchMetrics"][0].update(Extra=1),
    }
    for breakage, mutate in breakages.items():
        broken = json.loads(json.dumps(good))
        mutate(broken)
        with pytest.raises(AssertionError, match="not EMF"):
            emf_spec.check(json.dumps(broken))
        assert breakage


def test_the_latency_sample_is_bounded_and_uniform() -> None:
    state = random.getstate()
    try:
        random.seed(24)  # the reservoir draws from random: a fixed seed, the same draw each run
        _sample_halves()
    finally:
        random.setstate(state)  # later tests draw as they would have


def _sample_halves() -> None:
    low = high = 0
    for _ in range(200):
        reservoir = metrics.Reservoir(100)
        for value in range(10_000):
            reservoir.add(value)
        assert len(reservoir.values) == 100
        assert len(set(reservoir.values)) == 100
        low += sum(v < 5_000 for v in reservoir.values)
        high += sum(v >= 5_000 for v in reservoir.values)
    # Uniform: each half of the stream holds half of the sample (20,000 draws: +-3 %).
    assert abs(low - high) < 0.03 * (low + high)
    small = metrics.Reservoir(100)
    for value in range(7):
        small.add(value)
    assert small.values == list(range(7))


# -- capacity: what DynamoDB reported ------------------------------------------------------

READS = {"GetItem", "Query", "Scan", "BatchGetItem"}
WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"}


@pytest.mark.parametrize("backend", ["moto_server", "dynalite"], indirect=True)
def test_read_and_write_units_are_what_dynamodb_reported(
    backend: Backend, local_api: LocalManagementApi, clock: FakeClock, captured: Captured
) -> None:
    assert backend.endpoint is not None
    with capacity_proxy(backend.endpoint) as (url, calls):
        chat = make_chat(
            Backend(backend.name, url),
            local_api,
            clock,
            "gsi_query",
            history_seconds=600,
            metrics="emf",
        )
        steps: list[Callable[[], object]] = [
            lambda: chat.connect(["lobby"]),
            lambda: chat.connect(["lobby"]),
            lambda: chat.send(chat.clients[0], "hi", room="lobby"),
            lambda: chat.call(chat.clients[1], {"action": "history", "room": "lobby", "last": 5}),
            lambda: chat.call(chat.clients[1], {"action": "presence", "room": "lobby"}),
            lambda: chat.call(chat.clients[1], {"action": "leaveRoom", "room": "lobby"}),
            lambda: chat.disconnect(chat.clients[0]),
        ]
        captured.take()
        reported_reads = reported_writes = 0.0
        for step in steps:
            seen = len(calls)
            step()
            made = calls[seen:]
            values = captured.one(captured.invocations[0][0])
            reads = sum(c.units for c in made if c.operation in READS)
            writes = sum(c.units for c in made if c.operation in WRITES)
            assert values.get("ReadUnits", 0) == pytest.approx(reads)
            assert values.get("WriteUnits", 0) == pytest.approx(writes)
            # Every read and write asked for its capacity.
            assert all(
                c.request.get("ReturnConsumedCapacity") == "TOTAL"
                for c in made
                if c.operation in READS | WRITES
            )
            reported_reads += reads
            reported_writes += writes
        assert reported_reads > 0
        assert reported_writes > 0


def test_docs_operate_states_the_gauges_cost_as_the_model_computes_it() -> None:
    from pathlib import Path

    from fanout_core.cost import open_connections_cost

    page = (Path(__file__).resolve().parent.parent / "docs" / "operate.md").read_text()
    for connections, seconds in ((10_000, 1), (1_000_000, 30)):
        cost = open_connections_cost(connections, seconds=seconds)
        row = (
            f"| {connections:,} | {cost.read_units:,.0f} | "
            f"{cost.read_units_per_month / 1e6:.3g} million | ${cost.dollars_per_month:.2f} |"
        )
        assert row in page, row
