"""AsyncHttpPoster over real HTTP: the same answers, signatures and URLs as the boto3 client."""

from __future__ import annotations

import datetime
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import botocore.auth
import pytest
from botocore.credentials import Credentials
from botocore.exceptions import NoCredentialsError
from hypothesis import given
from hypothesis import strategies as st

from fanout_core.delivery import Backoff, Deliverer, http11
from fanout_core.delivery.http_poster import AsyncHttpPoster
from fanout_core.delivery.posting import BotoPoster, PostOutcome, PostStatus, async_poster
from fanout_core.delivery.signing import encoded_id
from fanout_core.local.management_api import LocalManagementApi
from fanout_core.message import MAX_PAYLOAD_BYTES, Message
from fanout_core.outgoing import outgoing
from fanout_core.runtime import build_runtime
from fanout_core.store import ConnectionStore
from fanout_core.strategy import strategy_class
from tests.support import frames
from tests.support.backends import free_port

ENDPOINT = "https://abcd123.execute-api.eu-west-2.amazonaws.com/prod"
HOSTILE_IDS = ["a+b/c=", "L0SM9cOFvHcCIhw=", "x/y/z", "++==//", "A_b-C"]


# The fake credentials the posters sign with: conftest's, and moto's inside mock_aws().
TEST_CREDENTIALS = {"testing": "testing", "FOOBARKEY": "FOOBARSECRET"}


@pytest.fixture
def local_api() -> Iterator[LocalManagementApi]:
    """The local Management API checking every request's signature, as AWS does."""
    with LocalManagementApi(credentials=TEST_CREDENTIALS) as api:
        yield api


@pytest.fixture
def http_poster(local_api: LocalManagementApi) -> Iterator[AsyncHttpPoster]:
    poster = AsyncHttpPoster(override=f"{local_api.url}/prod", timeout=1.0)
    yield poster
    poster.close()


# -- a raw HTTP server that records requests and answers what a test scripts --------------


@dataclass
class Seen:
    """One request as the server read it."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes


Answer = Callable[[Seen], bytes]


@dataclass
class RawServer:
    """Answers each request with ``answer(request)``; ``close_after`` ends the connection."""

    answer: Answer
    close_after: bool = False
    seen: list[Seen] = field(default_factory=list)
    connections: int = 0
    generation: int = 0  # expire() bumps it: older connections are forgotten

    def expire(self) -> None:
        """Forget every open connection, as a NAT gateway forgets idle flows: silently,
        answering the next request on one with a reset."""
        self.generation += 1

    def __post_init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        born = self.generation
        with conn:
            buffer = b""
            while True:
                while b"\r\n\r\n" not in buffer:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ")
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                body, buffer = buffer[:length], buffer[length:]
                if born < self.generation:
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return  # closing with linger 0 sends a reset
                request = Seen(method, target, headers, body)
                self.seen.append(request)
                conn.sendall(self.answer(request))
                if self.close_after:
                    return

    def close(self) -> None:
        self.sock.close()


def ok_answer(request: Seen) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


@pytest.fixture
def raw_server() -> Iterator[Callable[..., RawServer]]:
    servers: list[RawServer] = []

    def make(answer: Answer = ok_answer, *, close_after: bool = False) -> RawServer:
        server = RawServer(answer, close_after)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def frozen_time(monkeypatch: pytest.MonkeyPatch) -> datetime.datetime:
    now = datetime.datetime(2024, 5, 6, 7, 8, 9)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: now)
    return now


# -- answers ------------------------------------------------------------------------------


def test_delivers_and_answers_410_for_an_unknown_connection(
    http_poster: AsyncHttpPoster, local_api: LocalManagementApi
) -> None:
    cid = local_api.connections.open()
    assert http_poster.post(ENDPOINT, cid, b"hello") == PostOutcome(PostStatus.OK)
    assert local_api.connections.inbox(cid) == [b"hello"]
    assert http_poster.post(ENDPOINT, "nobody", b"x") == PostOutcome(
        PostStatus.GONE, "410 GoneException"
    )


@pytest.mark.parametrize("status", [403, 410, 413, 429, 500])
def test_every_injected_error_maps_like_the_boto3_client(
    http_poster: AsyncHttpPoster, local_api: LocalManagementApi, status: int
) -> None:
    cid = local_api.connections.open()
    boto = BotoPoster(override=f"{local_api.url}/prod", timeout=1.0)
    local_api.faults.add(status, connection_id=cid)
    expected = boto.post(ENDPOINT, cid, b"x")
    local_api.faults.add(status, connection_id=cid)
    assert http_poster.post(ENDPOINT, cid, b"x") == expected
    assert expected.status is not PostStatus.OK


def test_oversized_post_is_413_like_the_boto3_client(
    http_poster: AsyncHttpPoster, local_api: LocalManagementApi
) -> None:
    cid = local_api.connections.open()
    outcome = http_poster.post(ENDPOINT, cid, b"x" * (MAX_PAYLOAD_BYTES + 1))
    assert outcome == PostOutcome(PostStatus.TOO_LARGE, "413 PayloadTooLargeException")
    assert http_poster.post(ENDPOINT, cid, b"y" * MAX_PAYLOAD_BYTES) == PostOutcome(PostStatus.OK)


@pytest.mark.parametrize(
    ("head", "body", "expected"),
    [
        # No x-amzn-ErrorType: the code comes from the body, as botocore reads it.
        ("", b'{"__type": "com.amazon#ForbiddenException"}', "403 ForbiddenException"),
        ("", b'{"code": "GoneException"}', "410 GoneException"),
        ("x-amzn-ErrorType: LimitExceededException:http://internal\r\n", b"{}", "429 "),
        # A bare 5xx: botocore's generic error, coded by the status itself.
        ("", b"", "503 503"),
        ("", b"<html>Service Unavailable</html>", "502 502"),
    ],
)
def test_error_codes_come_from_header_or_body_as_botocore_reads_them(
    raw_server: Callable[..., RawServer], head: str, body: bytes, expected: str
) -> None:
    status = int(expected[:3])

    def answer(request: Seen) -> bytes:
        return f"HTTP/1.1 {status} X\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode() + body

    server = raw_server(answer)
    poster = AsyncHttpPoster(override=server.url)
    try:
        outcome = poster.post(ENDPOINT, "abc", b"x")
    finally:
        poster.close()
    boto = BotoPoster(override=server.url).post(ENDPOINT, "abc", b"x")
    assert outcome == boto
    assert outcome.detail.startswith(expected.strip())


def test_chunked_and_close_delimited_answers_are_read(
    raw_server: Callable[..., RawServer],
) -> None:
    answers = iter(
        [
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            b"HTTP/1.1 410 Gone\r\nTransfer-Encoding: chunked\r\n\r\n"
            b'1a\r\n{"__type":"GoneException"}\r\n0\r\n\r\n',
            b"HTTP/1.1 200 OK\r\n\r\n",  # no length: the body ends with the connection
        ]
    )
    server = raw_server(lambda request: next(answers))
    poster = AsyncHttpPoster(override=server.url)
    try:
        assert poster.post(ENDPOINT, "a", b"1").status is PostStatus.OK
        assert poster.post(ENDPOINT, "a", b"2") == PostOutcome(PostStatus.GONE, "410 GoneException")
        # Still on the first, kept-alive connection.
        assert server.connections == 1
    finally:
        poster.close()


# -- timeouts and broken connections ----------------------------------------------------


def test_no_answer_in_time_is_a_read_timeout(
    http_poster: AsyncHttpPoster, local_api: LocalManagementApi
) -> None:
    cid = local_api.connections.open()
    local_api.faults.add(0, connection_id=cid, hang_seconds=3)
    assert http_poster.post(ENDPOINT, cid, b"x") == PostOutcome(
        PostStatus.NO_ANSWER, "ReadTimeoutError"
    )
    # The next post opens a new connection and is delivered.
    assert http_poster.post(ENDPOINT, cid, b"y") == PostOutcome(PostStatus.OK)
    assert local_api.connections.inbox(cid) == [b"y"]  # a hung post delivers nothing


def test_nothing_listening_is_an_endpoint_connection_error() -> None:
    poster = AsyncHttpPoster(override=f"http://127.0.0.1:{free_port()}", timeout=1.0)
    try:
        outcome = poster.post(ENDPOINT, "a", b"x")
    finally:
        poster.close()
    assert outcome == PostOutcome(PostStatus.NO_ANSWER, "EndpointConnectionError")
    assert outcome.status.retryable


def test_answer_cut_short_is_a_closed_connection(raw_server: Callable[..., RawServer]) -> None:
    server = raw_server(
        lambda request: b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", close_after=True
    )
    poster = AsyncHttpPoster(override=server.url)
    try:
        assert poster.post(ENDPOINT, "a", b"x") == PostOutcome(
            PostStatus.NO_ANSWER, "ConnectionClosedError"
        )
    finally:
        poster.close()


def test_keep_alive_connection_closed_by_the_server_is_replaced(
    raw_server: Callable[..., RawServer],
) -> None:
    # The server closes every connection after one answer, without saying so.
    server = raw_server(close_after=True)
    poster = AsyncHttpPoster(override=server.url)
    try:
        for _ in range(3):
            assert poster.post(ENDPOINT, "a", b"x") == PostOutcome(PostStatus.OK)
    finally:
        poster.close()
    assert len(server.seen) == 3
    assert server.connections == 3


def slow_ok(request: Seen) -> bytes:
    time.sleep(0.05)  # long enough for concurrent posts to open connections of their own
    return ok_answer(request)


def test_after_a_silent_drop_of_idle_connections_one_new_connection_delivers(
    raw_server: Callable[..., RawServer],
) -> None:
    from fanout_core.result import FanoutResult
    from fanout_core.store import Target

    server = raw_server(slow_ok)
    poster = AsyncHttpPoster(override=server.url, pool_size=8, credentials=Credentials("a", "b"))
    deliverer = Deliverer(poster, concurrency=8, backoff=Backoff(attempts=1))
    try:
        warm = FanoutResult("test", None, "m")
        deliverer.deliver_targets([Target(f"c{i}", ENDPOINT) for i in range(8)], b"x", warm)
        assert warm.delivered == 8
        assert server.connections == 8
        server.expire()
        # One attempt only: the post must not burn it on the other stale connections.
        result = FanoutResult("test", None, "m")
        deliverer.deliver_targets([Target("late", ENDPOINT)], b"x", result)
    finally:
        deliverer.close()
    assert (result.delivered, result.failed) == (1, 0)
    assert server.connections == 9  # the reset one's replacement; the other idle ones dropped


def test_connections_idle_past_the_limit_are_not_reused(
    raw_server: Callable[..., RawServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = raw_server()
    poster = AsyncHttpPoster(override=server.url, credentials=Credentials("a", "b"))
    try:
        assert poster.post(ENDPOINT, "a", b"x") == PostOutcome(PostStatus.OK)
        assert poster.post(ENDPOINT, "b", b"x") == PostOutcome(PostStatus.OK)
        assert server.connections == 1  # reused while fresh
        monkeypatch.setattr(http11, "MAX_IDLE_SECONDS", 0.0)
        assert poster.post(ENDPOINT, "c", b"x") == PostOutcome(PostStatus.OK)
    finally:
        poster.close()
    assert server.connections == 2


def test_bytes_nobody_asked_for_make_a_connection_unusable(
    raw_server: Callable[..., RawServer],
) -> None:
    # An answer followed at once by a 408 the server sends before hanging up: reusing the
    # connection would read that 408 as the next post's answer.
    server = raw_server(
        lambda request: (
            ok_answer(request) + b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n"
        )
    )
    poster = AsyncHttpPoster(override=server.url, credentials=Credentials("a", "b"))
    try:
        for cid in ("a", "b"):
            assert poster.post(ENDPOINT, cid, b"x") == PostOutcome(PostStatus.OK)
    finally:
        poster.close()
    assert server.connections == 2


def test_closing_during_a_fanout_ends_it_with_an_error_instead_of_a_hang(
    raw_server: Callable[..., RawServer],
) -> None:
    from fanout_core.result import FanoutResult
    from fanout_core.store import Target

    def slow(request: Seen) -> bytes:
        time.sleep(1.0)
        return ok_answer(request)

    server = raw_server(slow)
    poster = AsyncHttpPoster(override=server.url, credentials=Credentials("a", "b"))
    deliverer = Deliverer(poster, concurrency=2)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            targets = [Target(f"c{i}", ENDPOINT) for i in range(6)]
            deliverer.deliver_targets(targets, b"x", FanoutResult("test", None, "m"))
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    while len(server.seen) < 2 and thread.is_alive():
        time.sleep(0.01)
    deliverer.close()
    thread.join(5)
    assert not thread.is_alive(), "the fan-out still waits on posts of a closed Deliverer"
    assert len(errors) == 1
    assert "closed during a fan-out" in str(errors[0])


def test_an_https_proxy_makes_build_runtime_use_the_boto3_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.support.backends import Backend

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    runtime = build_runtime(Backend("moto", None).config(management_endpoint=ENDPOINT))
    try:
        assert isinstance(runtime.deliverer.poster, BotoPoster)
    finally:
        runtime.close()


# -- signing, URL, region, credentials --------------------------------------------------


@pytest.mark.parametrize("token", ["session-token", None])
def test_signature_and_url_match_the_boto3_client(
    raw_server: Callable[..., RawServer], frozen_time: datetime.datetime, token: str | None
) -> None:
    server = raw_server()
    credentials = Credentials("AKIDEXAMPLE", "secret", token)
    poster = AsyncHttpPoster(
        override=f"{server.url}/prod",
        credentials=credentials,
        clock=frozen_time.replace(tzinfo=datetime.UTC).timestamp,
    )
    boto = BotoPoster(override=f"{server.url}/prod")
    try:
        for cid in HOSTILE_IDS:
            server.seen.clear()
            assert poster.post(ENDPOINT, cid, b'{"a": 1}').status is PostStatus.OK
            with pytest.MonkeyPatch.context() as env:
                env.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
                env.setenv("AWS_SECRET_ACCESS_KEY", "secret")
                if token is None:
                    env.delenv("AWS_SESSION_TOKEN")
                else:
                    env.setenv("AWS_SESSION_TOKEN", token)
                # A fresh client, so it reads these credentials.
                from fanout_core.delivery import posting

                posting._clients.clear()
                assert boto.post(ENDPOINT, cid, b'{"a": 1}').status is PostStatus.OK
                posting._clients.clear()
            ours, theirs = server.seen
            assert ours.target == theirs.target
            assert "%2F" in ours.target or "/" not in cid
            for name in ("host", "x-amz-date", "x-amz-security-token", "authorization"):
                assert ours.headers.get(name) == theirs.headers.get(name), name
            assert ours.body == theirs.body
            assert ("x-amz-security-token" in ours.headers) == (token is not None)
    finally:
        poster.close()
    assert "/eu-west-2/execute-api/aws4_request" in ours.headers["authorization"]
    assert ours.headers["x-amz-date"] == "20240506T070809Z"


def test_ids_with_plus_slash_and_equals_reach_their_connection(
    http_poster: AsyncHttpPoster, local_api: LocalManagementApi
) -> None:
    for cid in HOSTILE_IDS:
        local_api.connections.open(cid)
        assert http_poster.post(ENDPOINT, cid, cid.encode()) == PostOutcome(PostStatus.OK)
        assert local_api.connections.inbox(cid) == [cid.encode()]


def test_region_comes_from_the_execute_api_host_else_the_default(
    raw_server: Callable[..., RawServer],
) -> None:
    server = raw_server()
    poster = AsyncHttpPoster(override=server.url, region="ap-south-1")
    try:
        poster.post("https://x1.execute-api.sa-east-1.amazonaws.com/prod", "a", b"x")
        poster.post("https://chat.example.com/prod", "a", b"x")
    finally:
        poster.close()
    scopes = [seen.headers["authorization"] for seen in server.seen]
    assert "/sa-east-1/execute-api/" in scopes[0]
    assert "/ap-south-1/execute-api/" in scopes[1]


def test_without_override_the_connection_endpoint_is_used(
    raw_server: Callable[..., RawServer],
) -> None:
    server = raw_server()
    poster = AsyncHttpPoster()
    try:
        assert poster.post(f"{server.url}/stage", "a/b", b"x").status is PostStatus.OK
    finally:
        poster.close()
    (seen,) = server.seen
    assert seen.target == "/stage/@connections/a%2Fb"
    assert seen.headers["host"] == f"127.0.0.1:{server.port}"
    assert "x-amz-security-token" not in seen.headers or seen.headers["x-amz-security-token"]


def test_missing_credentials_raise_as_with_boto3(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    poster = AsyncHttpPoster(override=f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(NoCredentialsError):
            poster.post(ENDPOINT, "a", b"x")
    finally:
        poster.close()


# -- through the Deliverer --------------------------------------------------------------


def no_sleep(seconds: float) -> None:
    assert 0 <= seconds <= 2.0


def test_deliverer_uses_the_loop_path_bounded_retried_and_cleaned(
    store: ConnectionStore, local_api: LocalManagementApi
) -> None:
    # No post here is held: on a busy machine a 1 s timeout turned the 403's late answer
    # into a retry that delivered (8 delivered, 1 failed).
    poster = AsyncHttpPoster(override=f"{local_api.url}/prod", timeout=5.0)
    assert async_poster(poster) is poster
    deliverer = Deliverer(
        poster, on_gone=store.disconnect, concurrency=3, backoff=Backoff(attempts=3), sleep=no_sleep
    )
    ids = [local_api.connections.open() for _ in range(10)]
    for cid in ids:
        store.connect(cid, ENDPOINT, rooms=["r"])
    gone = ids[1]
    local_api.connections.close(gone)
    local_api.faults.add(429, connection_id=ids[2], times=2)
    local_api.faults.add(500, connection_id=ids[3], times=5)
    local_api.faults.add(403, connection_id=ids[4])
    local_api.faults.latency = 0.02
    strategy = strategy_class("gsi_query")(store, deliverer, store.config)
    try:
        result = strategy.fanout(outgoing(Message(ids[0], "hi", "r")))
    finally:
        deliverer.close()
    assert (result.delivered, result.gone, result.failed) == (7, 1, 2)
    assert result.retried == 2 + 2
    assert result.throttled == 2
    reasons = sorted(f.reason for f in result.failures)
    assert reasons == [
        "403 ForbiddenException",
        "500 InternalServerErrorException after 3 attempts",
    ]
    assert local_api.max_in_flight == 3
    assert store.get_connection(gone) is None
    assert store.get_connection(ids[4]) is not None
    for cid in ids:
        if cid not in (gone, ids[3], ids[4]):
            assert len(local_api.connections.inbox(cid)) == 1


def test_build_runtime_posts_with_the_async_http_poster_by_default(
    store: ConnectionStore, local_api: LocalManagementApi
) -> None:
    config = store.config.__class__(
        table=store.config.table,
        dynamodb_endpoint=store.config.dynamodb_endpoint,
        management_endpoint=f"{local_api.url}/prod",
        concurrency=5,
    )
    runtime = build_runtime(config)
    try:
        assert isinstance(runtime.deliverer.poster, AsyncHttpPoster)
        assert runtime.deliverer.poster.override == f"{local_api.url}/prod"
        assert runtime.deliverer.poster.pool_size == 5
        cid = local_api.connections.open()
        runtime.store.connect(cid, ENDPOINT, rooms=["r"])
        result = runtime.strategy.fanout(outgoing(Message(cid, "yo", "r")))
    finally:
        runtime.close()
    assert result.delivered == 1
    assert frames.decode(local_api.connections.inbox(cid)[0])["body"] == "yo"


def test_a_failing_audience_read_still_waits_for_posts_and_raises(
    store: ConnectionStore, local_api: LocalManagementApi
) -> None:
    from fanout_core.result import FanoutResult
    from fanout_core.store import Target

    poster = AsyncHttpPoster(override=f"{local_api.url}/prod")
    deliverer = Deliverer(poster, on_gone=store.disconnect, concurrency=2)
    ids = [local_api.connections.open() for _ in range(3)]

    def targets() -> Iterator[Target]:
        for cid in ids:
            yield Target(cid, ENDPOINT)
        raise RuntimeError("page read failed")

    result = FanoutResult("test", None, "m")
    try:
        with pytest.raises(RuntimeError, match="page read failed"):
            deliverer.deliver_targets(targets(), b"x", result)
    finally:
        deliverer.close()
    assert result.delivered == 3


# -- signatures, checked by the local Management API -----------------------------------


def signed_request(
    api: LocalManagementApi, cid: str, body: bytes, secret: str = "testing"
) -> tuple[str, dict[str, str]]:
    """A POST to ``cid`` signed by botocore's SigV4Auth: its path and headers."""
    from botocore.awsrequest import AWSRequest

    url = f"{api.url}/prod/@connections/{cid}"
    request = AWSRequest(method="POST", url=url, data=body)
    credentials = Credentials("testing", secret, "testing")
    botocore.auth.SigV4Auth(credentials, "execute-api", "us-east-1").add_auth(request)
    return f"/prod/@connections/{cid}", dict(request.headers.items())


def send(api: LocalManagementApi, path: str, headers: dict[str, str], body: bytes) -> int:
    import http.client

    connection = http.client.HTTPConnection(api.host, api.port, timeout=5)
    try:
        connection.request("POST", path, body=body, headers=headers)
        return connection.getresponse().status
    finally:
        connection.close()


def test_the_local_api_accepts_botocore_signatures_and_refuses_tampered_ones(
    local_api: LocalManagementApi,
) -> None:
    cid = local_api.connections.open()
    path, headers = signed_request(local_api, cid, b"signed")
    assert send(local_api, path, headers, b"signed") == 200
    # The same headers over another body, another path, or with one digit changed.
    assert send(local_api, path, headers, b"Signed") == 403
    other = local_api.connections.open()
    assert send(local_api, f"/prod/@connections/{other}", headers, b"signed") == 403
    signature = headers["Authorization"][-64:]
    flipped = format(int(signature[0], 16) ^ 1, "x") + signature[1:]
    tampered = dict(headers, Authorization=headers["Authorization"][:-64] + flipped)
    assert send(local_api, path, tampered, b"signed") == 403
    # Signed with a wrong secret, or not signed at all.
    path, wrong = signed_request(local_api, cid, b"x", secret="not-the-secret")
    assert send(local_api, path, wrong, b"x") == 403
    assert send(local_api, path, {}, b"x") == 403
    assert local_api.connections.inbox(cid) == [b"signed"]
    assert local_api.connections.inbox(other) == []
    assert local_api.total("POST", 403) == 5


def test_posts_signed_with_a_wrong_secret_are_refused_as_aws_does(
    local_api: LocalManagementApi,
) -> None:
    cid = local_api.connections.open()
    wrong = Credentials("testing", "not-the-secret", "testing")
    poster = AsyncHttpPoster(override=f"{local_api.url}/prod", credentials=wrong)
    try:
        outcome = poster.post(ENDPOINT, cid, b"x")
    finally:
        poster.close()
    assert outcome == PostOutcome(PostStatus.FORBIDDEN, "403 InvalidSignatureException")
    assert local_api.connections.inbox(cid) == []


def test_signatures_stay_valid_across_seconds_payloads_and_ids(
    local_api: LocalManagementApi,
) -> None:
    # Each post's signature is built from cached parts: a new second, a new payload or a
    # new id must each give a signature the server accepts.
    now = [time.time()]
    poster = AsyncHttpPoster(override=f"{local_api.url}/prod", clock=lambda: now[0])
    ids = [local_api.connections.open(cid) for cid in HOSTILE_IDS]
    try:
        for step, cid in enumerate(ids):
            for body in (b"one", b"two" * step):
                assert poster.post(ENDPOINT, cid, body).status is PostStatus.OK
            now[0] += 0.6  # a new second every other id
        now[0] -= 400  # signed earlier than AWS allows: the server refuses it
        outcome = poster.post(ENDPOINT, ids[0], b"late")
    finally:
        poster.close()
    assert outcome == PostOutcome(PostStatus.FORBIDDEN, "403 InvalidSignatureException")
    assert local_api.total("POST", 200) == 2 * len(ids)


def test_new_credentials_sign_from_the_next_second_on(local_api: LocalManagementApi) -> None:
    # The signer reads the credentials once a second: rotated ones (a refresh) are used
    # from the next second on.
    now = [time.time()]
    credentials = Credentials("testing", "testing", "testing")
    poster = AsyncHttpPoster(
        override=f"{local_api.url}/prod", credentials=credentials, clock=lambda: now[0]
    )
    cid = local_api.connections.open()
    try:
        assert poster.post(ENDPOINT, cid, b"old").status is PostStatus.OK
        credentials.access_key, credentials.secret_key = "FOOBARKEY", "FOOBARSECRET"
        local_api.credentials = {"FOOBARKEY": "FOOBARSECRET"}
        assert poster.post(ENDPOINT, cid, b"same second").status is PostStatus.FORBIDDEN
        now[0] += 1
        assert poster.post(ENDPOINT, cid, b"new").status is PostStatus.OK
    finally:
        poster.close()
    assert local_api.connections.inbox(cid) == [b"old", b"new"]


@given(st.text())
def test_ids_are_encoded_as_botocore_encodes_a_uri_label(cid: str) -> None:
    from botocore.utils import percent_encode

    assert encoded_id(cid) == percent_encode(cid, safe="-._~")
