"""Publishing from outside a WebSocket: `publish_http` (a Function URL or API Gateway with IAM
auth) and `publish_events` (EventBridge, SNS, SQS), on the event shapes AWS documents
(tests/support/fixtures), against dynalite and the local Management API."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from fanout_core import handlers
from fanout_core.local.management_api import LocalManagementApi
from fanout_core.local.serve import LocalDeployment
from tests.support.backends import Backend
from tests.support.clock import FakeClock
from tests.support.harness import Chat, make_chat

FIXTURES = Path(__file__).parent / "support" / "fixtures"


def fixture(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return event


@pytest.fixture
def chat(dynalite_url: str, local_api: LocalManagementApi, clock: FakeClock) -> Chat:
    return make_chat(Backend("dynalite", dynalite_url), local_api, clock, "gsi_query")


def request(body: Any, *, method: str = "POST", encoded: bool = False) -> dict[str, Any]:
    event = fixture("function_url_request.json")
    raw = body if isinstance(body, str) else json.dumps(body)
    if encoded:
        raw = base64.b64encode(raw.encode()).decode()
    event["body"], event["isBase64Encoded"] = raw, encoded
    event["requestContext"]["http"]["method"] = method
    return event


def answer(response: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    assert response["headers"]["Content-Type"] == "application/json"
    return response["statusCode"], json.loads(response["body"])


def test_a_post_publishes_and_answers_the_result(chat: Chat) -> None:
    a, b, c = chat.connect(["lobby"]), chat.connect(["lobby"]), chat.connect()
    body = {"room": "lobby", "event": "order.created", "data": {"order": 42}, "exclude": [b]}
    status, result = answer(handlers.publish_http(request(body)))
    assert status == 200
    assert (result["room"], result["delivered"], result["duplicate"]) == ("lobby", 1, False)
    [frame] = chat.frames(a)
    assert (frame["event"], frame["data"], frame["from"]) == ("order.created", {"order": 42}, None)
    assert frame["id"] == result["message_id"]
    assert chat.frames(b) == chat.frames(c) == []
    # Everyone (no audience), base64 as a Function URL passes binary bodies, and an id.
    keyed = {"data": "all", "id": "k-1"}
    assert answer(handlers.publish_http(request(keyed, encoded=True)))[1]["delivered"] == 3
    again = answer(handlers.publish_http(request(keyed)))[1]
    assert (again["duplicate"], again["delivered"]) == (True, 0)
    # A user, and chosen connections.
    assert answer(handlers.publish_http(request({"connections": [c], "data": 1})))[0] == 200
    assert [f["data"] for f in chat.frames(c)] == ["all", 1]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ("not json", 400, "invalid_json"),
        ("[1]", 400, "invalid_body"),
        ('{"data": 1, "x": 2}', 400, "invalid_body"),
        ('{"room": "lobby"}', 400, "missing_data"),
        ('{"room": "a#b", "data": 1}', 400, "invalid_room"),
        ('{"room": "a", "user": "u", "data": 1}', 400, "invalid_audience"),
        ('{"data": 1, "event": "presence.join"}', 400, "invalid_event"),
        ('{"data": 1, "event": 7}', 400, "invalid_event"),
        ('{"data": 1, "id": "no spaces"}', 400, "invalid_id"),
        ('{"data": 1, "exclude": "abc"}', 400, "invalid_body"),
        ('{"data": 1, "connections": [1]}', 400, "invalid_body"),
        ('{"data": ' + "1" * 5000 + "}", 400, "invalid_json"),
        ('{"data": "' + "x" * 140_000 + '"}', 413, "payload_too_large"),
        ('{"data": "' + "x" * 131_000 + '"}', 413, "payload_too_large"),
    ],
)
def test_bad_input_is_a_json_error_and_publishes_nothing(
    chat: Chat, body: str, status: int, code: str
) -> None:
    a = chat.connect(["lobby", "a"])
    got_status, error = answer(handlers.publish_http(request(body)))
    assert (got_status, error["error"]) == (status, code)
    assert chat.frames(a) == []


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "OPTIONS"])
def test_anything_but_post_is_405(chat: Chat, method: str) -> None:
    response = handlers.publish_http(request({"data": 1}, method=method))
    assert answer(response)[0] == 405
    assert response["headers"]["Allow"] == "POST"
    # API Gateway's REST payload names its method at the top.
    rest = {"httpMethod": method, "body": json.dumps({"data": 1}), "isBase64Encoded": False}
    assert handlers.publish_http(rest)["statusCode"] == 405


def test_eventbridge_detail_is_the_body_and_detail_type_the_event(chat: Chat) -> None:
    a = chat.connect(["orders"])
    event = fixture("eventbridge_event.json")
    event["detail-type"] = "order.created"
    event["detail"] = {"room": "orders", "data": {"order": 7}}
    assert handlers.publish_events(event)["published"] == 1
    event["detail"] = {"room": "orders", "data": 8, "event": "order.paid"}
    assert handlers.publish_events(event)["published"] == 1
    assert [(f["event"], f["data"]) for f in chat.frames(a)] == [
        ("order.created", {"order": 7}),
        ("order.paid", 8),
    ]
    # The documented sample's detail is no publish body: refused, not retried, nothing sent.
    sample = fixture("eventbridge_event.json")
    assert handlers.publish_events(sample) == {"published": 0, "refused": 1}
    assert len(chat.frames(a)) == 2


def test_sns_records_each_publish(chat: Chat) -> None:
    a = chat.connect(["news"])
    event = fixture("sns_event.json")
    second = copy.deepcopy(event["Records"][0])
    event["Records"][0]["Sns"]["Message"] = json.dumps({"room": "news", "data": "one"})
    second["Sns"]["Message"] = json.dumps({"room": "news", "data": "two"})
    event["Records"].append(second)
    assert handlers.publish_events(event) == {"published": 2, "refused": 0}
    assert [f["data"] for f in chat.frames(a)] == ["one", "two"]
    # A bad record is refused (logged) and the rest publish; no retry could fix it.
    event["Records"][0]["Sns"]["Message"] = "Hello from SNS!"
    assert handlers.publish_events(event) == {"published": 1, "refused": 1}


def test_sqs_reports_the_records_it_could_not_publish_and_publishes_the_rest(chat: Chat) -> None:
    a = chat.connect(["jobs"])
    event = fixture("sqs_event.json")
    template = event["Records"][0]
    bodies = [
        {"room": "jobs", "data": 1},
        "not json",
        {"room": "jobs", "data": 2, "event": "history.x"},
        {"room": "jobs", "data": 3},
    ]
    event["Records"] = []
    for n, body in enumerate(bodies):
        record = copy.deepcopy(template)
        record["messageId"] = f"m-{n}"
        record["body"] = body if isinstance(body, str) else json.dumps(body)
        event["Records"].append(record)
    assert handlers.publish_events(event) == {
        "batchItemFailures": [{"itemIdentifier": "m-1"}, {"itemIdentifier": "m-2"}]
    }
    assert [f["data"] for f in chat.frames(a)] == [1, 3]
    # The documented sample's body ("test") is no publish body: reported.
    assert handlers.publish_events(fixture("sqs_event.json")) == {
        "batchItemFailures": [{"itemIdentifier": "059f36b4-87a3-44ab-83d2-661975830a7d"}]
    }


# -- POST /publish on `fanout serve` -------------------------------------------------------

KEYS = {"AKIDLOCALTEST": "local-secret"}


def signed(url: str, body: bytes, *, service: str = "lambda", secret: str = "local-secret") -> Any:
    """A urllib request signed with SigV4 as an AWS SDK signs it."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    aws = AWSRequest("POST", url, data=body, headers={"content-type": "application/json"})
    SigV4Auth(Credentials("AKIDLOCALTEST", secret), service, "us-east-1").add_auth(aws)
    return urllib.request.Request(url, body, dict(aws.headers.items()), method="POST")


def status_of(req: urllib.request.Request) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


@pytest.mark.server
def test_fanout_serve_publish_checks_sigv4_when_keys_are_configured() -> None:
    async def scenario() -> None:
        async with LocalDeployment(
            port=0, table="publish-http", publish_credentials=KEYS
        ) as deployment:
            url = deployment.publish_url
            ws = await connect(deployment.ws_url + "?room=lobby")
            body = json.dumps({"room": "lobby", "data": {"n": 1}}).encode()
            status, result = await asyncio.to_thread(status_of, signed(url, body))
            assert (status, result["delivered"]) == (200, 1)
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert (frame["data"], frame["room"]) == ({"n": 1}, "lobby")
            via_api_gateway = signed(url, body, service="execute-api")
            assert (await asyncio.to_thread(status_of, via_api_gateway))[0] == 200

            unsigned = urllib.request.Request(url, body, method="POST")
            tampered = signed(url, body)
            tampered.data = json.dumps({"room": "lobby", "data": {"n": 666}}).encode()
            wrong_key = signed(url, body, secret="guessed")
            wrong_service = signed(url, body, service="s3")
            for refused in (unsigned, tampered, wrong_key, wrong_service):
                status, answer_ = await asyncio.to_thread(status_of, refused)
                assert status == 403, answer_
            bad = signed(url, b'{"room": "lobby"}')
            assert (await asyncio.to_thread(status_of, bad))[0] == 400
            second = json.loads(await asyncio.wait_for(ws.recv(), 10))  # via execute-api
            assert second["data"] == {"n": 1}
            with pytest.raises(TimeoutError):  # nothing refused was published
                await asyncio.wait_for(ws.recv(), 0.5)
            await ws.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))


@pytest.mark.server
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_docs_curl_example_publishes_signed() -> None:
    """docs/publish.md's command line, as written but for the port, against --sign-publish."""
    doc = (Path(__file__).parent.parent / "docs" / "publish.md").read_text()
    [command] = [b for b in re.findall(r"```sh\n(.*?)```", doc, re.S) if "--aws-sigv4" in b]
    keys = {os.environ["AWS_ACCESS_KEY_ID"]: os.environ["AWS_SECRET_ACCESS_KEY"]}

    async def scenario() -> None:
        async with LocalDeployment(
            port=0, table="publish-curl", publish_credentials=keys
        ) as deployment:
            ws = await connect(deployment.ws_url + "?room=lobby")
            line = command.replace("http://127.0.0.1:8766/publish", deployment.publish_url)
            env = {k: v for k, v in os.environ.items() if k != "AWS_SESSION_TOKEN"}
            done = await asyncio.to_thread(
                subprocess.run, ["sh", "-c", line], capture_output=True, text=True, env=env
            )
            assert done.returncode == 0, done.stderr
            assert json.loads(done.stdout)["delivered"] == 1, done.stdout
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert (frame["event"], frame["data"]) == ("order.created", {"order": 42})
            await ws.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_sign_publish_uses_the_shells_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from fanout_core.cli.local import publish_credentials

    assert publish_credentials(argparse.Namespace(sign_publish=False)) is None
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDSHELL")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "shell-secret")
    signed_by = publish_credentials(argparse.Namespace(sign_publish=True))
    assert signed_by == {"AKIDSHELL": "shell-secret"}
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(SystemExit, match="--sign-publish needs"):
        publish_credentials(argparse.Namespace(sign_publish=True))
