"""The entry points that are not a WebSocket route: the sign-in authorizer, the SQS worker,
the publishers (``publish_http``, ``publish_events``) and the schedules (``sweep``,
``open_connections``). ``fanout_core.handlers`` exports each under its Lambda handler name.

Each is one invocation (``entry``): its metrics written once, as one document, and its log
lines carrying its route and request id. Like the routes, each imports the rest on first use.
"""

from __future__ import annotations

import logging
from typing import Any

from fanout_core import metrics
from fanout_core.answers import Response, count_answer, entry
from fanout_core.result import report
from fanout_core.runtime import get_runtime

__all__ = [
    "authorizer",
    "open_connections",
    "publish_events",
    "publish_http",
    "sqs_worker",
    "sweep",
]

log = logging.getLogger("fanout_core.handlers")


@entry
def authorizer(event: Any, context: Any = None) -> dict[str, Any]:
    """``$connect``'s REQUEST authorizer: a JWT checked (or ``FANOUT_AUTHORIZER``'s check),
    answered Allow with the principal and chosen claims, or refused (docs/signin.md)."""
    from fanout_core.signin import authorize

    return authorize(event, context)


@entry
def sqs_worker(event: Any, context: Any = None) -> dict[str, list[dict[str, str]]]:
    """SQS worker for ``sqs_batched``: post each record, report only failed ones."""
    from fanout_core.worker import process_records

    runtime = get_runtime()
    records = event.get("Records") if isinstance(event, dict) else None
    rows = records if isinstance(records, list) else []  # {"Records": 1} too
    metrics.add("WorkerTasks", len(rows))
    try:
        response, results = process_records(event, runtime.deliverer, runtime.tasks)
    except Exception:
        log.exception("unreadable SQS event")
        ids = [r.get("messageId") for r in rows if isinstance(r, dict)]
        response = {"batchItemFailures": [{"itemIdentifier": i} for i in ids if isinstance(i, str)]}
        results = []
    metrics.add("Errors", len(response["batchItemFailures"]))
    for result in results:
        report("sqs_worker", result)
    return response


@entry
def publish_http(event: Any, context: Any = None) -> Response:
    """A Lambda Function URL (``AuthType: AWS_IAM``) or API Gateway (IAM auth) publish:
    ``POST`` a JSON body ``{room|user|connections, event, data, exclude, id}``; 200 with the
    ``FanoutResult``, 400 with a JSON error, 413 over 128 KB, 405 for another method."""
    from fanout_core.inbound import http

    answer = None
    try:
        answer = http(event)
    finally:
        count_answer(answer)
    return answer


@entry
def publish_events(event: Any, context: Any = None) -> dict[str, Any]:
    """EventBridge events (``detail`` is the publish body, ``detail-type`` the default event),
    SNS and SQS records whose body is one; for SQS, ``batchItemFailures``."""
    from fanout_core.inbound import events

    return events(event)


@entry
def sweep(event: Any = None, context: Any = None) -> dict[str, int]:
    """Scheduled: delete every expired row; returns what was deleted."""
    result = get_runtime().store.sweep()
    log.info("sweep deleted %d connections, %d memberships", result.connections, result.memberships)
    return {"connections": result.connections, "memberships": result.memberships}


@entry
def open_connections(event: Any = None, context: Any = None) -> dict[str, int]:
    """Scheduled (every 5 minutes): count the live connections, the OpenConnections metric
    that API Gateway does not publish."""
    count = get_runtime().store.count_connections()
    metrics.gauge("OpenConnections", count)
    log.info("open connections: %d", count)
    return {"connections": count}
