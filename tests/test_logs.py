"""Logs: one library logger, silent by default; on Lambda JSON lines at FANOUT_LOG_LEVEL;
never a token, a query-string value or a message body in a line."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from fanout_core import handlers, logs
from fanout_core.config import RateLimit
from fanout_core.local.management_api import LocalManagementApi
from tests.support.backends import Backend
from tests.support.clock import FakeClock
from tests.support.events import connect_event, message_event, sqs_event
from tests.support.harness import make_chat


def _in_a_fresh_process(code: str, **env: str) -> Any:
    import os

    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("FANOUT_", "AWS_LAMBDA"))
    }
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**environment, **env},
    )
    return json.loads(out.stdout), out.stderr


SHOW = """
import json, logging, fanout_core.handlers
logger = logging.getLogger("fanout_core")
print(json.dumps([logging.getLevelName(logger.level), logger.propagate,
                  [type(h).__name__ for h in logger.handlers]]))
logging.getLogger("fanout_core.x").warning("a warning")
"""


def test_off_lambda_the_library_is_silent_and_leaves_logging_to_the_application() -> None:
    (level, propagate, kinds), stderr = _in_a_fresh_process(SHOW)
    assert (level, propagate, kinds) == ("NOTSET", True, ["NullHandler"])
    assert stderr == ""  # the NullHandler keeps Python's last resort from printing
    (level, _, kinds), _ = _in_a_fresh_process(SHOW, FANOUT_LOG_LEVEL="debug")
    assert (level, kinds) == ("DEBUG", ["NullHandler"])


def test_on_lambda_json_lines_go_to_stderr_at_the_level_asked() -> None:
    (level, propagate, kinds), stderr = _in_a_fresh_process(
        SHOW, AWS_LAMBDA_FUNCTION_NAME="fn", FANOUT_STRATEGY="sqs_batched"
    )
    assert (level, propagate, kinds) == ("INFO", False, ["NullHandler", "StreamHandler"])
    [line] = stderr.splitlines()
    parsed = json.loads(line)
    assert (parsed["level"], parsed["message"], parsed["strategy"]) == (
        "WARNING",
        "a warning",
        "sqs_batched",
    )
    (level, _, _), _ = _in_a_fresh_process(
        SHOW, AWS_LAMBDA_FUNCTION_NAME="fn", AWS_LAMBDA_LOG_LEVEL="WARN"
    )
    assert level == "WARNING"  # Lambda's own log level, when FANOUT_LOG_LEVEL is unset
    (level, _, _), _ = _in_a_fresh_process(
        SHOW, AWS_LAMBDA_FUNCTION_NAME="fn", AWS_LAMBDA_LOG_LEVEL="WARN", FANOUT_LOG_LEVEL="ERROR"
    )
    assert level == "ERROR"


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    """Every line the library logs, at DEBUG, formatted as on Lambda."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.JsonFormatter("gsi_query"))
    logger = logging.getLogger("fanout_core")
    saved = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield out
    logger.removeHandler(handler)
    logger.setLevel(saved)


SECRETS = ("tok-7f3a", "qsv-91c2", "body-4e1d", "data-0b8f", "room-5cc1")


@pytest.mark.parametrize("backend", ["moto"], indirect=True)
def test_no_line_holds_a_token_a_query_string_value_or_a_body(
    backend: Backend, local_api: LocalManagementApi, clock: FakeClock, lines: io.StringIO
) -> None:
    token, value, body, data, room = SECRETS
    chat = make_chat(
        backend, local_api, clock, "gsi_query", history_seconds=600, rate_limit=RateLimit(3, 60)
    )
    context = SimpleNamespace(aws_request_id="req-1")
    local_api.connections.open("C1")
    event = connect_event("C1", rooms=[room])
    event["queryStringParameters"] = {"room": room, "token": token, "x": value}
    event["multiValueQueryStringParameters"] = {"room": [room], "token": [token], "x": [value]}
    assert handlers.connect(event, context)["statusCode"] == 200
    chat.clients.append("C1")
    refused = connect_event("C2", rooms=[f"{room}#bad"])
    refused["queryStringParameters"]["token"] = token
    handlers.connect(refused, context)
    other = chat.connect([room])
    chat.drop(other)  # the next fan-out meets a 410
    third = chat.connect([room])
    local_api.faults.add(429, connection_id=third, times=1)  # a throttle: a WARNING line
    local_api.faults.add(403, connection_id=third, times=1)  # then a failure
    for sent in (
        {"action": "sendMessage", "room": room, "text": body},
        {"action": "sendMessage", "room": room, "data": {"secret": data}},
        {"action": "sendMessage", "room": f"not-{room}", "text": body},  # not a member
        {"action": "sendMessage", "text": body, "id": "bad id!"},
        {"action": "history", "room": room, "since": 0},
        {"action": "nonsense", "text": body},
        {"action": "sendMessage", "room": room, "text": body},  # rate limited
    ):
        handlers.websocket(message_event("C1", sent), context)
    handlers.websocket(message_event("C1", f'{{"action": "sendMessage", "text": "{body}'), context)

    def broken(connection_id: str, *, partition: object = None) -> bool:
        raise RuntimeError("the table is on fire")

    chat.runtime.store.touch = broken  # type: ignore[method-assign]
    clock.advance(60)  # a ping costs a token too: the bucket is full again
    handlers.websocket(message_event("C1", {"action": "ping"}), context)  # answered 500
    handlers.sqs_worker(sqs_event([f"not json {body}"]), context)

    logged = lines.getvalue().splitlines()
    parsed = [json.loads(line) for line in logged]  # every line is one JSON object
    levels = [p["level"] for p in parsed]
    assert "INFO" in levels
    assert "WARNING" in levels
    assert "ERROR" in levels
    fanouts = [p for p in parsed if p["message"].startswith("fanout ")]
    assert fanouts
    assert all(set(p["counts"]) >= {"delivered", "gone", "failed"} for p in fanouts)
    [failure] = [p for p in parsed if p["message"] == "ping failed"]
    assert (failure["request_id"], failure["route"], failure["connection_id"]) == (
        "req-1",
        "ping",
        "C1",
    )
    for line in logged:
        for secret in SECRETS:
            assert secret not in line, f"{secret!r} logged: {line}"
