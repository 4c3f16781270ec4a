"""Publishes from outside a WebSocket: an HTTP request (a Lambda Function URL, or API Gateway
with IAM auth), and EventBridge events, SNS and SQS records, each holding a publish body:

    {"room" | "user" | "connections": ..., "event": ..., "data": ..., "exclude": [...], "id": ...}

No audience is everyone. Each body goes through ``Fanout.publish``, so it gets the same checks
as backend code's publishes, and a bad one is refused before any read or post.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Mapping
from typing import Any

from fanout_core import metrics
from fanout_core.answers import Response, answer_for, error_response
from fanout_core.errors import ConfigError, PayloadTooLargeError
from fanout_core.events import RequestError
from fanout_core.message import DEFAULT_EVENT, MAX_PAYLOAD_BYTES
from fanout_core.result import FanoutResult

log = logging.getLogger("fanout_core.handlers")

FIELDS = frozenset({"room", "user", "connections", "event", "data", "exclude", "id"})


def _ids(body: Mapping[str, Any], name: str) -> list[str] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise RequestError(400, "invalid_body", f"'{name}' is a list of connection ids")
    return value


def publish_body(body: object, default_event: str = DEFAULT_EVENT) -> FanoutResult:
    """Publish one body through the container's ``Fanout``; RequestError (or the library's
    errors) for a bad one, before any read or post."""
    from fanout_core.fanout import Fanout

    if not isinstance(body, Mapping):
        raise RequestError(400, "invalid_body", "the body must be a JSON object")
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        shown = ", ".join(json.dumps(name)[:40] for name in unknown[:5])
        raise RequestError(400, "invalid_body", f"unknown field {shown}; fields: {sorted(FIELDS)}")
    if "data" not in body:
        raise RequestError(400, "missing_data", "a publish needs 'data' (any JSON value)")
    event = body.get("event", default_event)
    if not isinstance(event, str):
        raise RequestError(400, "invalid_event", "'event' must be a string")
    for name in ("room", "user", "id"):
        if body.get(name) is not None and not isinstance(body[name], str):
            raise RequestError(400, "invalid_body", f"'{name}' must be a string")
    try:
        return Fanout().publish(
            body["data"],
            room=body.get("room"),
            user=body.get("user"),
            connections=_ids(body, "connections"),
            exclude=_ids(body, "exclude") or (),
            event=event,
            idempotency_key=body.get("id"),
        )
    except (ConfigError, PayloadTooLargeError):
        raise
    except TypeError:
        raise RequestError(400, "invalid_data", "'data' is not JSON-serialisable") from None
    except ValueError as error:  # an audience, room, user, id or event the library refuses
        answer = answer_for(error, "publish")
        if answer["statusCode"] == 500:  # not one of the library's own: an audience mistake
            raise RequestError(400, "invalid_audience", str(error)) from None
        raise


def _decoded(raw: object, encoded: bool) -> str:
    if raw is None:
        raise RequestError(400, "invalid_body", "the request has no body; send a JSON object")
    if not isinstance(raw, str):
        raise RequestError(400, "invalid_body", "the body must be a string")
    if encoded:
        try:
            raw = base64.b64decode(raw, validate=True).decode()
        except ValueError:
            raise RequestError(400, "invalid_body", "the body is not base64 UTF-8") from None
    assert isinstance(raw, str)
    if len(raw.encode()) > MAX_PAYLOAD_BYTES:
        raise RequestError(413, "payload_too_large", "the body is over 128 KB")
    return raw


def parse(raw: str) -> object:
    """A body's JSON, or a 400 (huge integers and deep nesting included)."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise RequestError(400, "invalid_json", "the body is not valid JSON") from None


def http(event: object) -> Response:
    """A Function URL (or API Gateway) request: 200 with the FanoutResult, or a JSON error."""
    if not isinstance(event, Mapping):
        return error_response(400, "malformed_event", "the event must be an object")
    context = event.get("requestContext")
    method = event.get("httpMethod")  # API Gateway's REST payload
    if isinstance(context, Mapping) and isinstance(context.get("http"), Mapping):
        method = context["http"].get("method")  # Function URLs' and HTTP APIs' payload 2.0
    if method != "POST":
        answer = error_response(405, "method_not_allowed", "publish with POST")
        answer["headers"]["Allow"] = "POST"
        return answer
    try:
        result = publish_body(
            parse(_decoded(event.get("body"), event.get("isBase64Encoded") is True))
        )
    except Exception as error:
        return answer_for(error, "publish_http")
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(result.summary()),
    }


def _record_id(record: Mapping[str, Any]) -> str:
    sns = record.get("Sns")
    return str(
        sns.get("MessageId", "") if isinstance(sns, Mapping) else record.get("messageId", "")
    )


def _body_of(record: Mapping[str, Any]) -> object:
    """The publish body of an SNS record (its Message) or an SQS record (its body)."""
    sns = record.get("Sns")
    raw = sns.get("Message") if isinstance(sns, Mapping) else record.get("body")
    return parse(_decoded(raw, False))


def _attempt(where: str, body: object, default_event: str = DEFAULT_EVENT) -> int:
    """Publish one body; its status: 200, 4xx for a bad body (logged), 5xx (logged)."""
    try:
        publish_body(body, default_event)
    except Exception as error:
        answer = answer_for(error, where)
        log.warning("%s not published: %s", where, answer.get("body", ""))
        return int(answer["statusCode"])
    return 200


def _counted(status: int) -> int:
    """``status``, counted in the invocation's metrics as a route's answer is."""
    metrics.add("Errors" if status >= 500 else "ClientErrors", status >= 400)
    return status


def events(event: object) -> dict[str, Any]:
    """EventBridge events, SNS and SQS records: publish each body. An EventBridge event's
    ``detail`` is the body, its ``detail-type`` the default event name. For SQS, the answer
    lists the records that could not be published (``batchItemFailures``), the rest publish;
    for SNS and EventBridge, only a failure worth retrying (5xx) raises, so Lambda retries."""
    if isinstance(event, Mapping) and "detail" in event and "detail-type" in event:
        default = event["detail-type"]
        name = default if isinstance(default, str) else DEFAULT_EVENT
        status = _counted(_attempt("an EventBridge event", event["detail"], name))
        if status >= 500:
            raise RuntimeError(f"the EventBridge event {event.get('id')} was not published")
        return {"published": int(status == 200), "refused": int(status != 200)}
    records = event.get("Records") if isinstance(event, Mapping) else None
    if not isinstance(records, list):
        log.warning("publish_events: neither an EventBridge event nor SNS or SQS records")
        _counted(400)
        return {"published": 0, "refused": 1}
    failures: list[dict[str, str]] = []
    published = retry = 0
    for record in records:
        record_id, status = "", 400
        if isinstance(record, Mapping):
            record_id = _record_id(record)
            try:
                body = _body_of(record)
            except RequestError as error:
                log.warning("record %s not published: %s", record_id, error)
            else:
                status = _attempt(f"record {record_id}", body)
        _counted(status)
        published += status == 200
        retry += status >= 500
        if status != 200:
            failures.append({"itemIdentifier": record_id})
    if any(isinstance(r, Mapping) and r.get("eventSource") == "aws:sqs" for r in records):
        return {"batchItemFailures": [f for f in failures if f["itemIdentifier"]]}
    if retry:  # SNS invokes asynchronously: a raise has Lambda retry the whole event
        raise RuntimeError(f"{retry} of {len(records)} SNS records failed; retried whole")
    return {"published": published, "refused": len(failures)}
