"""Fanout.publish, members and disconnect_user: what backend code calls, with no event at hand."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from fanout_core import (
    Fanout,
    InvalidConnectionIdError,
    InvalidEventError,
    InvalidPrincipalError,
    InvalidRoomNameError,
    PayloadTooLargeError,
)
from fanout_core.delivery.http_poster import AsyncHttpPoster
from fanout_core.delivery.posting import BotoPoster, Poster, PostOutcome
from fanout_core.local.management_api import LocalManagementApi
from fanout_core.message import MAX_PAYLOAD_BYTES, Message
from tests.support.backends import STRATEGIES, Backend
from tests.support.clock import FakeClock
from tests.support.events import connect_event
from tests.support.harness import Chat, make_chat
from tests.support.hyp_strategies import JUNK, VALID_CONNECTION_ID, hostile_strings, profile, scaled
from tests.support.strategy_classes import SqsBatched

OK = {"statusCode": 200}
HOSTILE_PUBLISH = settings(
    profile(),
    max_examples=scaled(2.0),  # fast 200, thorough 2000: no network but the local API
    suppress_health_check=[*profile().suppress_health_check, HealthCheck.too_slow],
)


@pytest.fixture(params=STRATEGIES)
def chat(request: pytest.FixtureRequest, chat_with: Callable[..., Chat]) -> Chat:
    return chat_with(request.param, segments=3)


def connect(chat: Chat, *, rooms: list[str] | None = None, principal: str | None = None) -> str:
    cid = chat.api.connections.open()
    from fanout_core import handlers

    assert handlers.connect(connect_event(cid, rooms=rooms, principal=principal), None) == OK
    return cid


def publish(chat: Chat, data: Any, **audience: Any) -> int:
    """Publish, let the SQS workers run; how many connections it was handed to."""
    posts = chat.api.total("POST", 200) + chat.api.total("POST", 410)
    result = Fanout(runtime=chat.runtime).publish(data, **audience)
    if chat.pump is not None:
        chat.pump.drain()  # the workers read the audience, post, and delete what answers 410
        return chat.api.total("POST", 200) + chat.api.total("POST", 410) - posts
    return result.delivered + result.gone


def data_frames(chat: Chat, cid: str) -> list[dict[str, Any]]:
    return [f for f in chat.frames(cid) if "data" in f]


def test_publish_reaches_exactly_each_audience(chat: Chat) -> None:
    alice = [connect(chat, rooms=["orders-42"], principal="alice") for _ in range(3)]
    bob = connect(chat, rooms=["orders-42"], principal="bob")
    anonymous = connect(chat)
    everyone = [*alice, bob, anonymous]

    assert publish(chat, {"order": 42}, room="orders-42", event="order.updated") == 4
    for cid in [*alice, bob]:
        (frame,) = data_frames(chat, cid)
        assert frame["event"] == "order.updated"
        assert (frame["from"], frame["room"], frame["data"]) == (None, "orders-42", {"order": 42})
    assert data_frames(chat, anonymous) == []

    assert publish(chat, ["to", "alice"], user="alice") == 3
    for cid in everyone:
        got = [f["data"] for f in data_frames(chat, cid) if f["room"] is None]
        assert got == ([["to", "alice"]] if cid in alice else [])

    assert publish(chat, 7, connections=[bob, anonymous], exclude=[bob]) == 1
    assert [f["data"] for f in data_frames(chat, anonymous)] == [7]

    assert publish(chat, None, exclude=[alice[0]]) == 4
    assert data_frames(chat, alice[0])[-1]["data"] == ["to", "alice"]  # excluded: no null
    assert all(data_frames(chat, cid)[-1]["data"] is None for cid in everyone[1:])


def test_a_gone_target_is_deleted_as_usual(chat: Chat) -> None:
    keep = connect(chat, principal="carol")
    gone = connect(chat, principal="carol")
    chat.drop(gone)
    assert publish(chat, {"x": 1}, user="carol") == 2
    assert chat.row_ids() == {keep}
    assert chat.api.total("POST", 410) == 1
    assert publish(chat, {"x": 2}, connections=[gone, keep]) == 1  # gone's row went
    assert [f["data"] for f in data_frames(chat, keep)] == [{"x": 1}, {"x": 2}]
    assert chat.api.total("POST", 410) == 1


def test_members_and_disconnect_user(chat: Chat) -> None:
    alice = [connect(chat, rooms=["lobby"], principal="alice") for _ in range(2)]
    silent = connect(chat, rooms=["lobby"], principal="alice")
    bob = connect(chat, rooms=["lobby"])
    chat.drop(silent)
    fanout = Fanout(runtime=chat.runtime)
    members = {m.connection_id: m.principal for m in fanout.members("lobby", page_size=1)}
    assert members == {alice[0]: "alice", alice[1]: "alice", silent: "alice", bob: None}

    result = fanout.disconnect_user("alice")

    assert (result.connections, result.closed, result.gone, result.failed) == (3, 2, 1, 0)
    assert not any(chat.api.connections.is_open(cid) for cid in alice)
    assert chat.row_ids() == {bob}
    assert [m.connection_id for m in fanout.members("lobby")] == [bob]
    assert fanout.disconnect_user("alice").connections == 0


def test_disconnect_user_keeps_the_rows_of_a_connection_it_could_not_close(chat: Chat) -> None:
    alice = [connect(chat, rooms=["lobby", "ops"], principal="alice") for _ in range(3)]
    bob = connect(chat, rooms=["lobby"])
    stuck = alice[1]
    rows_of_stuck = {key: e for key, e in chat.harness.rows().items() if key[0] == stuck}
    assert len(rows_of_stuck) >= 3  # the connection and its two rooms at least
    with pytest.raises(ValueError, match="no fault for method 'PUT'"):
        chat.api.faults.add(500, connection_id=stuck, method="PUT")
    chat.api.faults.add(500, connection_id=stuck, method="DELETE")
    assert publish(chat, {"x": 1}, user="alice") == 3  # a fault on DELETE spares posts
    assert chat.api.faults.pending() == 1
    fanout = Fanout(runtime=chat.runtime)

    result = fanout.disconnect_user("alice")

    assert (result.connections, result.closed, result.gone, result.failed) == (3, 2, 0, 1)
    assert chat.api.total("DELETE", 500) == 1
    assert chat.api.faults.pending() == 0
    assert [cid for cid in alice if chat.api.connections.is_open(cid)] == [stuck]
    assert chat.row_ids() == {stuck, bob}
    assert {k: e for k, e in chat.harness.rows().items() if k[0] == stuck} == rows_of_stuck
    assert sorted(m.connection_id for m in fanout.members("ops")) == [stuck]

    chat.api.faults.clear()
    again = fanout.disconnect_user("alice")

    assert (again.connections, again.closed, again.gone, again.failed) == (1, 1, 0, 0)
    assert again.rows_deleted == len(rows_of_stuck)
    assert not chat.api.connections.is_open(stuck)
    assert chat.row_ids() == {bob}
    assert chat.api.total("DELETE", 204) == 3


DEAD = "http://127.0.0.1:9"  # nothing listens there: a close sent there would fail


class ClosingPoster(BotoPoster):
    """boto3's poster, noting the connections it is asked to close."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self.deleted: list[str] = []

    def delete(self, endpoint: str, connection_id: str) -> PostOutcome:
        self.deleted.append(connection_id)
        return super().delete(endpoint, connection_id)


class PostOnlyPoster:
    """A poster of one's own that posts and cannot close."""

    def __init__(self, inner: Poster) -> None:
        self.inner = inner

    def post(self, endpoint: str, connection_id: str, data: bytes) -> PostOutcome:
        return self.inner.post(endpoint, connection_id, data)

    def close(self) -> None:
        self.inner.close()


def own_fanout(chat: Chat, poster: Poster, **config: Any) -> Fanout:
    """A Fanout with a runtime of its own over the chat's table, posting through ``poster``."""
    return Fanout(
        dataclasses.replace(chat.runtime.config, **config), poster=poster, clock=chat.clock
    )


@pytest.mark.parametrize("chat", ["gsi_query"], indirect=True)
def test_disconnect_user_closes_through_an_injected_poster_that_can(chat: Chat) -> None:
    a = connect(chat, principal="alice")
    poster = ClosingPoster(override=f"{chat.api.url}/prod")
    fanout = own_fanout(chat, poster, management_endpoint=DEAD)
    try:
        assert fanout.closer is poster
        result = fanout.disconnect_user("alice")
    finally:
        fanout.close()
    assert (result.closed, result.failed) == (1, 0)
    assert poster.deleted == [a]
    assert not chat.api.connections.is_open(a)


@pytest.mark.parametrize("chat", ["gsi_query"], indirect=True)
def test_disconnect_user_closes_where_the_runtime_poster_posts(chat: Chat) -> None:
    a = connect(chat, principal="alice")
    poster = AsyncHttpPoster(
        override=f"{chat.api.url}/prod", pool_size=3, timeout=2.5, region="eu-west-1"
    )
    fanout = own_fanout(chat, poster, management_endpoint=DEAD)
    try:
        closer = fanout.closer
        assert isinstance(closer, BotoPoster)
        assert (closer.override, closer.pool_size, closer.timeout, closer.region) == (
            poster.override,
            3,
            2.5,
            "eu-west-1",
        )
        assert fanout.closer is closer  # built once
        assert fanout.publish({"x": 1}, user="alice").delivered == 1
        result = fanout.disconnect_user("alice")
    finally:
        fanout.close()
    assert (result.closed, result.failed) == (1, 0)
    assert not chat.api.connections.is_open(a)
    assert chat.row_ids() == set()


@pytest.mark.parametrize("chat", ["gsi_query"], indirect=True)
def test_disconnect_user_closes_with_the_config_when_the_poster_cannot(chat: Chat) -> None:
    a = connect(chat, principal="alice")
    endpoint = f"{chat.api.url}/prod"
    inner = BotoPoster(override=endpoint)
    fanout = own_fanout(chat, PostOnlyPoster(inner), management_endpoint=endpoint, concurrency=3)
    try:
        closer = fanout.closer
        assert isinstance(closer, BotoPoster)
        assert closer is not inner
        assert (closer.override, closer.pool_size, closer.region) == (endpoint, 3, "us-east-1")
        result = fanout.disconnect_user("alice")
    finally:
        fanout.close()
    assert (result.closed, result.failed) == (1, 0)
    assert not chat.api.connections.is_open(a)


def _unserialisable() -> list[Any]:
    cycle: list[Any] = []
    cycle.append(cycle)
    return [object(), {1, 2}, float("nan"), {"k": float("inf")}, cycle, "\ud800", {1: b"x"}]


BAD_AUDIENCES: list[tuple[dict[str, Any], type[Exception]]] = [
    ({"room": "a#b"}, InvalidRoomNameError),
    ({"room": "x" * 201}, InvalidRoomNameError),
    ({"user": "a b"}, InvalidPrincipalError),
    ({"user": "USER#x"}, InvalidPrincipalError),
    ({"connections": ["ok", "a#b"]}, InvalidConnectionIdError),
    ({"connections": []}, ValueError),
    ({"connections": "L0SM9cOFvHcCIhw="}, ValueError),  # a string, not a list of ids
    ({"exclude": ["CONN#x"]}, InvalidConnectionIdError),
    ({"room": "r", "user": "u"}, ValueError),
    ({"event": "presence.join"}, InvalidEventError),
    ({"event": "a b"}, InvalidEventError),
]


@pytest.fixture
def counted_calls(chat: Chat) -> Iterator[list[str]]:
    """DynamoDB operations the store sends while a test runs, and sqs_batched's SQS ones."""
    calls: list[str] = []
    clients: list[tuple[Any, str]] = [(chat.runtime.store.models.client, "dynamodb")]
    if isinstance(chat.runtime.strategy, SqsBatched):
        clients.append((chat.runtime.strategy.client, "sqs"))

    def record(model: Any, **kwargs: Any) -> None:
        calls.append(model.name)

    for client, service in clients:
        client.meta.events.register(f"before-parameter-build.{service}", record)
    yield calls
    for client, service in clients:
        client.meta.events.unregister(f"before-parameter-build.{service}", record)


@pytest.mark.parametrize("backend", ["moto"], indirect=True)
@pytest.mark.parametrize("data", _unserialisable())
def test_data_that_is_not_json_raises_type_error_before_any_read_or_post(
    chat: Chat, counted_calls: list[str], data: Any
) -> None:
    connect(chat)
    counted_calls.clear()
    with pytest.raises(TypeError, match="JSON"):
        Fanout(runtime=chat.runtime).publish(data)
    assert counted_calls == []
    assert chat.api.total("POST") == 0


@pytest.mark.parametrize("backend", ["moto"], indirect=True)
@pytest.mark.parametrize(("audience", "error"), BAD_AUDIENCES)
def test_a_bad_audience_or_event_raises_before_any_read_or_post(
    chat: Chat, counted_calls: list[str], audience: dict[str, Any], error: type[Exception]
) -> None:
    connect(chat)
    counted_calls.clear()
    with pytest.raises(error):
        Fanout(runtime=chat.runtime).publish({"x": 1}, **audience)
    assert counted_calls == []
    assert chat.api.total("POST") == 0


@pytest.mark.parametrize("backend", ["moto"], indirect=True)
def test_a_frame_over_128_kb_raises_before_any_read_or_post(
    chat: Chat, counted_calls: list[str]
) -> None:
    connect(chat)
    counted_calls.clear()
    with pytest.raises(PayloadTooLargeError) as raised:
        Fanout(runtime=chat.runtime).publish("x" * MAX_PAYLOAD_BYTES, room="r")
    assert raised.value.limit == MAX_PAYLOAD_BYTES
    assert counted_calls == []
    assert chat.api.total("POST") == 0
    # The largest frame that fits is delivered whole.
    a = connect(chat, rooms=["r"])
    envelope = len(Message(None, room="r", id="0" * 32, data="").frame())
    fits = "y" * (MAX_PAYLOAD_BYTES - envelope)
    assert publish(chat, fits, room="r") == 1
    # The counter sees what a refusal must not send: the reads, and sqs_batched's enqueue.
    assert "Query" in counted_calls or "Scan" in counted_calls
    assert ("SendMessageBatch" in counted_calls) == (chat.pump is not None)
    assert len(chat.api.connections.inbox(a)[-1]) == MAX_PAYLOAD_BYTES


@pytest.mark.parametrize("chat", ["gsi_query"], indirect=True)
def test_a_user_is_one_index_partition_whatever_the_table(chat: Chat) -> None:
    """3 connections of alice among 60: 3 index entries read, not 60, on every backend."""
    for n in range(60):
        connect(chat, rooms=["big"], principal="alice" if n % 20 == 0 else f"user-{n}")
    fanout = Fanout(runtime=chat.runtime)
    page_size = chat.runtime.config.page_size
    assert page_size == 2
    user = fanout.publish({"x": 1}, user="alice")
    everyone = fanout.publish({"x": 1})
    assert (user.delivered, user.items_scanned) == (3, 3)
    assert user.dynamodb_requests == 2  # 3 entries, 2 a page: one partition, nothing else
    assert (everyone.delivered, everyone.items_scanned) == (60, 60)
    assert everyone.dynamodb_requests >= 60 // page_size
    if user.read_units is not None:  # where the backend reports ConsumedCapacity
        assert everyone.read_units is not None
        assert everyone.read_units > 10 * user.read_units
    if chat.harness.backend.name == "dynalite":  # sizes units as DynamoDB; moto: 1 a request
        assert user.read_units is not None
        assert user.read_units <= 0.5 * user.dynamodb_requests  # under 4 KB a request


# -- the CLI ---------------------------------------------------------------------------


def run_fanout(
    *args: str, env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fanout_core.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.fixture
def cli_env(dynalite_url: str, local_api: LocalManagementApi) -> tuple[dict[str, str], Chat]:
    chat = make_chat(Backend("dynalite", dynalite_url), local_api, FakeClock(), "gsi_query")
    config = chat.runtime.config
    env = {
        **os.environ,
        "FANOUT_TABLE": config.table,
        "AWS_ENDPOINT_URL_DYNAMODB": dynalite_url,
        "AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI": f"{local_api.url}/prod",
    }
    return env, chat


def test_cli_publish_and_members(cli_env: tuple[dict[str, str], Chat]) -> None:
    env, chat = cli_env
    a = connect(chat, rooms=["lobby"], principal="alice")
    b = connect(chat, rooms=["lobby"])
    done = run_fanout(
        "publish", "--room", "lobby", "--event", "ping.v1", "--data", '{"n":1}', env=env
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["delivered"] == 2
    assert data_frames(chat, b)[0]["data"] == {"n": 1}
    done = run_fanout(
        "publish", "--connection", a, "--connection", b, "--exclude", b, "--data", "3", env=env
    )
    assert (done.returncode, json.loads(done.stdout)["delivered"]) == (0, 1)
    c = connect(chat)
    # Several ids after one flag, and the flag repeated.
    several = ["--connection", a, b, "--connection", c, "--exclude", a, b]
    done = run_fanout("publish", *several, "--data", "4", env=env)
    assert (done.returncode, json.loads(done.stdout)["delivered"]) == (0, 1), done.stderr
    assert [f["data"] for f in data_frames(chat, c)] == [4]
    assert [f["data"] for f in data_frames(chat, a)] == [{"n": 1}, 3]
    done = run_fanout("members", "lobby", env=env)
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert sorted(lines, key=lambda m: m["principal"] or "") == [
        {"connection_id": b, "principal": None},
        {"connection_id": a, "principal": "alice"},
    ]


def test_cli_publish_exits_1_when_a_post_failed(cli_env: tuple[dict[str, str], Chat]) -> None:
    env, chat = cli_env
    a = connect(chat, principal="alice")
    chat.api.faults.add(403, connection_id=a)
    done = run_fanout("publish", "--user", "alice", "--data", "{}", env=env)
    assert done.returncode == 1
    assert json.loads(done.stdout)["failed"] == 1


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--room", "lobby", "--data", "{not json"], "--data is not JSON"),
        (["--room", "a#b", "--data", "1"], "invalid room name"),
        (["--user", "a b", "--data", "1"], "invalid principal"),
        (["--connection", "x#y", "--data", "1"], "invalid connection id"),
        (["--connection", "ok", "x#y", "--data", "1"], "invalid connection id"),
        (["--everyone", "--exclude", "x#y", "--data", "1"], "invalid connection id"),
        (["--everyone", "--data", "NaN"], "--data is not JSON: NaN is not a JSON value"),
        (["--everyone", "--data", '{"x": -Infinity}'], "-Infinity is not a JSON value"),
        (["--everyone", "--event", "history.end", "--data", "1"], "invalid event name"),
        (["--everyone", "--data", "-"], "over the"),  # 128 KB from stdin
        (["--everyone", "--data", "@/nonexistent.json"], "No such file"),
    ],
)
def test_cli_publish_refuses_bad_input(
    cli_env: tuple[dict[str, str], Chat], args: list[str], says: str
) -> None:
    env, chat = cli_env
    connect(chat)
    done = run_fanout("publish", *args, env=env, stdin=json.dumps("x" * MAX_PAYLOAD_BYTES))
    assert done.returncode == 2
    assert says in done.stderr
    assert "Traceback" not in done.stderr
    assert chat.api.total("POST") == 0


def test_cli_members_refuses_an_invalid_room(cli_env: tuple[dict[str, str], Chat]) -> None:
    env, chat = cli_env
    connect(chat, rooms=["lobby"])
    done = run_fanout("members", "a#b", env=env)
    assert (done.returncode, done.stdout) == (2, "")
    assert "invalid room name" in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_publish_needs_exactly_one_audience(cli_env: tuple[dict[str, str], Chat]) -> None:
    env, _ = cli_env
    for args in (["--data", "1"], ["--room", "r", "--user", "u", "--data", "1"]):
        done = run_fanout("publish", *args, env=env)
        assert done.returncode == 2
        assert "one of the arguments" in done.stderr or "not allowed with" in done.stderr


# -- hostile publishes ------------------------------------------------------------------

PEOPLE = {"alice": ["lobby"], "bob": ["lobby", "ops"], "auth0|c@d.io": []}


def json_values() -> st.SearchStrategy[Any]:
    return st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
        max_leaves=8,
    )


def publish_data() -> st.SearchStrategy[Any]:
    """Any JSON, or what is not JSON: sets, objects, NaN, lone surrogates, huge strings."""
    refused = st.one_of(
        st.sampled_from(_unserialisable()), st.builds(lambda n: "é" * n, st.just(70_000))
    )
    return st.one_of(json_values(), json_values(), json_values(), refused)


def audiences(ids: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """One audience (valid more often than not), or two at once, with exclude and an event."""
    rooms = st.sampled_from(["lobby", "ops", "empty"])
    names = st.one_of(rooms, rooms, rooms, hostile_strings(), JUNK)
    people = st.sampled_from(sorted(PEOPLE))
    users = st.one_of(people, people, people, hostile_strings(), JUNK)
    chosen = st.one_of(st.sampled_from(ids), st.sampled_from(ids), VALID_CONNECTION_ID)
    some = st.lists(chosen, min_size=1, max_size=4)
    connection_lists = st.one_of(
        some,
        some,
        st.lists(hostile_strings(), max_size=2),
        st.text(max_size=5),
        JUNK,
    )
    one = st.one_of(
        st.fixed_dictionaries({"room": names}),
        st.fixed_dictionaries({"user": users}),
        st.fixed_dictionaries({"connections": connection_lists}),
        st.just({}),
    )
    extra = st.fixed_dictionaries(
        {},
        optional={
            "exclude": st.one_of(*[st.lists(chosen, max_size=2)] * 4, st.lists(JUNK)),
            "event": st.sampled_from(["message", "order.updated", "a:b-c", "presence", 7]),
        },
    )
    two = st.builds(lambda a, b: {**a, **b}, one, one)
    return st.builds(lambda a, b: {**a, **b}, st.one_of(one, one, one, one, two), extra)


@pytest.mark.parametrize("backend", ["moto"], indirect=True)
def test_hostile_publishes_raise_before_reading_or_reach_only_their_audience(
    chat: Chat, counted_calls: list[str]
) -> None:
    members: dict[str, tuple[str, list[str]]] = {}
    for principal, rooms in PEOPLE.items():
        for _ in range(2):
            members[connect(chat, rooms=rooms, principal=principal)] = (principal, rooms)
    ids = sorted(members)
    fanout = Fanout(runtime=chat.runtime)

    @HOSTILE_PUBLISH
    @given(data=publish_data(), audience=audiences(ids))
    def check(data: Any, audience: dict[str, Any]) -> None:
        counted_calls.clear()
        before = {cid: len(chat.api.connections.inbox(cid)) for cid in ids}
        posts = chat.api.total("POST")
        try:
            result = fanout.publish(data, **audience)
        except (TypeError, ValueError, PayloadTooLargeError) as error:
            event(f"refused: {type(error).__name__}")
            assert counted_calls == [], "a refused publish read the table or enqueued"
            assert chat.api.total("POST") == posts, "a refused publish posted"
            return
        if chat.pump is not None:
            chat.pump.drain()  # the SQS worker posts
        expected = set(ids)
        audience = {k: v for k, v in audience.items() if v is not None}  # None: not given
        if "room" in audience:
            expected = {c for c in ids if audience["room"] in members[c][1]}
        elif "user" in audience:
            expected = {c for c in ids if members[c][0] == audience["user"]}
        elif "connections" in audience:
            expected = set(audience["connections"]) & set(ids)
        expected -= set(audience.get("exclude", ()))
        event(f"published to {len(expected)}")
        got = {cid for cid in ids if len(chat.api.connections.inbox(cid)) > before[cid]}
        assert got == expected
        # The tree's workers post: one post to each member of the audience, nothing more.
        assert (result.delivered if chat.pump is None else chat.api.total("POST") - posts) == len(
            expected
        )
        for cid in got:
            frame = chat.frames(cid)[-1]
            assert (frame["from"], frame["data"]) == (None, json.loads(json.dumps(data)))

    check()
