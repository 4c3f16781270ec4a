"""What each function may call, as data: one description for every way of deploying.

The CDK construct builds its policies from it and the tests hold template.yaml's to it, so
the two cannot drift apart. No handler imports it.

A grant is IAM action -> the names of the resources it is allowed on: ``table`` (the table's
ARN), ``index`` (``{table}/index/audience``), ``queue``, ``connections`` (the stage's
``POST/@connections/*``) and ``disconnections`` (``DELETE/@connections/*``). ``table SEQ#*``
is the table with the condition ``ForAllValues:StringLike`` ``dynamodb:LeadingKeys``
``SEQ#*``: history's room counters only; ``table RATE#*`` the principals' token buckets only.
"""

from __future__ import annotations

from collections.abc import Mapping

from fanout_core.keys import COUNTER_PREFIX, RATE_PREFIX

Grant = Mapping[str, frozenset[str]]

HANDLER_MODULE = "fanout_core.handlers"
# Route key -> handler in HANDLER_MODULE; the API's route selection expression is this.
ROUTE_SELECTION_EXPRESSION = "$request.body.action"
ROUTES: Mapping[str, str] = {
    "$connect": "connect",
    "$disconnect": "disconnect",
    "$default": "default",
    "sendMessage": "send_message",
    "joinRoom": "join_room",
    "leaveRoom": "leave_room",
    "ping": "ping",
    "presence": "presence",
    "history": "history",
}
# Routes with no answer to the client; every other one needs a `$default` route response,
# or API Gateway drops the handler's error body.
ONE_WAY_ROUTES = frozenset({"$connect", "$disconnect"})
WORKER = "sqs_worker"  # the SQS event source of sqs_batched's queue
AUTHORIZER = "authorizer"  # $connect's REQUEST authorizer, when sign-in is on
SWEEP = "sweep"  # a schedule, hourly
GAUGE = "open_connections"  # a schedule, every 5 minutes: the OpenConnections metric
# One function for every route instead: it dispatches on the route key, and its role needs
# the union of the route handlers' grants.
WEBSOCKET = "websocket"

TABLE = frozenset({"table"})
TABLE_AND_INDEX = frozenset({"table", "index"})
QUEUE = frozenset({"queue"})
CONNECTIONS = frozenset({"connections"})
COUNTERS = f"table {COUNTER_PREFIX}*"
USER_BUCKETS = f"table {RATE_PREFIX}*"

# Least privilege: exactly the calls each handler makes (through PynamoDB, boto3's SQS and
# Management API clients) with the default settings.
BASE: Mapping[str, Grant] = {
    "connect": {
        "dynamodb:BatchWriteItem": TABLE,
        "dynamodb:DeleteItem": TABLE,  # rollback of a failed connect
    },
    "disconnect": {
        "dynamodb:DeleteItem": TABLE,
        "dynamodb:Query": TABLE,
        "dynamodb:BatchWriteItem": TABLE,
    },
    "send_message": {
        "dynamodb:GetItem": TABLE,  # the sender's membership; a duplicate's first message
        "dynamodb:PutItem": TABLE,  # an idempotency key ("id"); a frame, history on
        "dynamodb:Query": TABLE_AND_INDEX,  # gsi_query, sqs_batched; 410 cleanup
        "dynamodb:Scan": TABLE,  # full_scan, parallel_scan
        "dynamodb:DeleteItem": TABLE,  # 410 cleanup
        "dynamodb:BatchWriteItem": TABLE,  # 410 cleanup
        "sqs:SendMessage": QUEUE,  # sqs_batched (SendMessageBatch)
        "execute-api:ManageConnections": CONNECTIONS,
    },
    "join_room": {
        "dynamodb:Query": TABLE,  # the connection's rows: live, its rooms, before and after
        "dynamodb:PutItem": TABLE,
        "dynamodb:DeleteItem": TABLE,  # a join that lost a race takes its row back
    },
    "leave_room": {"dynamodb:DeleteItem": TABLE},
    "ping": {"dynamodb:UpdateItem": TABLE, "dynamodb:Query": TABLE},
    "default": {},
    "sqs_worker": {
        "sqs:ReceiveMessage": QUEUE,  # the event source mapping
        "sqs:DeleteMessage": QUEUE,
        "sqs:GetQueueAttributes": QUEUE,
        "dynamodb:DeleteItem": TABLE,  # 410 cleanup
        "dynamodb:Query": TABLE_AND_INDEX,  # a read task's page (index); 410 cleanup (table)
        "dynamodb:BatchWriteItem": TABLE,
        "sqs:SendMessage": QUEUE,  # the next page's task, post batches, requeued posts
        "execute-api:ManageConnections": CONNECTIONS,
    },
    # It checks a token against the issuer's key set over HTTPS: no AWS call at all.
    AUTHORIZER: {},
    "sweep": {
        "dynamodb:Scan": TABLE,
        "dynamodb:DeleteItem": TABLE,
        "dynamodb:Query": TABLE,
        "dynamodb:BatchWriteItem": TABLE,
    },
    GAUGE: {"dynamodb:Query": frozenset({"index"})},  # a COUNT of each everyone-shard
    "history": {
        "dynamodb:GetItem": TABLE,  # the caller's membership, the room's counter
        "dynamodb:Query": TABLE,  # the room's frames; 410 cleanup
        "dynamodb:DeleteItem": TABLE,  # 410 cleanup
        "dynamodb:BatchWriteItem": TABLE,
        "execute-api:ManageConnections": CONNECTIONS,
    },
    "presence": {
        "dynamodb:GetItem": TABLE,  # the caller's membership
        "dynamodb:Query": TABLE_AND_INDEX,  # the room's members; 410 cleanup
        "dynamodb:BatchGetItem": TABLE,  # their principals
        "dynamodb:DeleteItem": TABLE,  # 410 cleanup
        "dynamodb:BatchWriteItem": TABLE,
        "execute-api:ManageConnections": CONNECTIONS,
    },
}

# What a fan-out of presence.join / presence.leave calls, from the handlers that see someone
# join or leave (FANOUT_PRESENCE_EVENTS=true).
_ANNOUNCE: Grant = {
    "dynamodb:Query": TABLE_AND_INDEX,
    "dynamodb:Scan": TABLE,
    "dynamodb:DeleteItem": TABLE,
    "dynamodb:BatchWriteItem": TABLE,
    "sqs:SendMessage": QUEUE,
    "execute-api:ManageConnections": CONNECTIONS,
}
WITH_PRESENCE_EVENTS: Mapping[str, Grant] = {
    **dict.fromkeys(("connect", "disconnect", "join_room", "leave_room"), _ANNOUNCE),
    "presence": {"dynamodb:Scan": TABLE, "sqs:SendMessage": QUEUE},
    "history": {
        "dynamodb:Scan": TABLE,
        "dynamodb:Query": frozenset({"index"}),
        "sqs:SendMessage": QUEUE,
    },
}
# FANOUT_RATE_LIMIT: the connection's bucket, taken by every action a client repeats (a ping
# updates the table already).
WITH_RATE_LIMIT: Mapping[str, Grant] = {
    handler: {"dynamodb:UpdateItem": TABLE}
    for handler in ("send_message", "history", "join_room", "leave_room", "presence")
}
# FANOUT_USER_RATE_LIMIT: the principal's bucket, taken by those and by $connect.
WITH_USER_RATE_LIMIT: Mapping[str, Grant] = {
    handler: {"dynamodb:UpdateItem": frozenset({USER_BUCKETS})}
    for handler in (
        "connect",
        "send_message",
        "history",
        "join_room",
        "leave_room",
        "presence",
        "ping",
    )
}
# FANOUT_MAX_CONNECTIONS_PER_USER: $connect counts the principal's live connections.
WITH_MAX_CONNECTIONS: Mapping[str, Grant] = {
    "connect": {"dynamodb:Query": frozenset({"index"})},
}
# FANOUT_HISTORY_SECONDS above 0: the room's sequence counter.
WITH_HISTORY: Mapping[str, Grant] = {
    "send_message": {"dynamodb:UpdateItem": TABLE},
    # A joining member's position: the room's counter, read and started if it has none.
    "connect": {"dynamodb:GetItem": TABLE, "dynamodb:UpdateItem": frozenset({COUNTERS})},
    "join_room": {"dynamodb:GetItem": TABLE, "dynamodb:UpdateItem": frozenset({COUNTERS})},
}

# What a function of the user's may do to publish with fanout_core.Fanout: what publish
# (every strategy, every audience, 410 cleanup), members and disconnect_user call.
PUBLISHER: Grant = {
    "dynamodb:Query": TABLE_AND_INDEX,  # rooms, users, everyone; 410 cleanup; history
    "dynamodb:GetItem": TABLE,  # a duplicate's first message; a room's counter
    "dynamodb:PutItem": TABLE,  # an idempotency key; a frame, history on
    "dynamodb:UpdateItem": frozenset({COUNTERS}),  # a room's counter, history on
    "dynamodb:Scan": TABLE,  # full_scan, parallel_scan
    "dynamodb:BatchGetItem": TABLE,  # chosen connections, members' principals
    "dynamodb:DeleteItem": TABLE,  # 410 cleanup, disconnect_user
    "dynamodb:BatchWriteItem": TABLE,
    "sqs:SendMessage": QUEUE,
    "execute-api:ManageConnections": frozenset({"connections", "disconnections"}),
}


# publish_http and publish_events: what Fanout.publish calls (PUBLISHER's POST part).
PUBLISH: Grant = {**PUBLISHER, "execute-api:ManageConnections": CONNECTIONS}
PUBLISH_HANDLERS = ("publish_http", "publish_events")


def merged(*grants: Grant) -> dict[str, frozenset[str]]:
    """The union of ``grants``: each action on every resource any of them names."""
    union: dict[str, frozenset[str]] = {}
    for grant in grants:
        for action, resources in grant.items():
            union[action] = union.get(action, frozenset()) | resources
    # A resource narrowed to some partitions ("table SEQ#*") is in the whole one ("table").
    return {
        action: frozenset(
            n for n in names if n.split(" ", 1)[0] == n or n.split(" ")[0] not in names
        )
        for action, names in union.items()
    }


def grants(
    *,
    presence_events: bool = False,
    rate_limit: bool = False,
    history: bool = False,
    publish: bool = False,
    user_rate_limit: bool = False,
    max_connections: bool = False,
) -> dict[str, dict[str, frozenset[str]]]:
    """Handler -> its grant, with what each setting that is on adds; ``publish``: with
    ``publish_http`` and ``publish_events`` (the template's optional publishers)."""
    extras = [
        extra
        for on, extra in (
            (presence_events, WITH_PRESENCE_EVENTS),
            (rate_limit, WITH_RATE_LIMIT),
            (history, WITH_HISTORY),
            (user_rate_limit, WITH_USER_RATE_LIMIT),
            (max_connections, WITH_MAX_CONNECTIONS),
        )
        if on
    ]
    handlers = {**BASE, **(dict.fromkeys(PUBLISH_HANDLERS, PUBLISH) if publish else {})}
    return {
        handler: merged(grant, *(extra.get(handler, {}) for extra in extras))
        for handler, grant in handlers.items()
    }


def statements(grant: Grant) -> list[tuple[tuple[str, ...], tuple[str, ...], str | None]]:
    """The grant as Allow statements: (actions, resource names, leading-key pattern or None).

    Actions that share their resources share a statement; a resource name with a pattern
    (``table SEQ#*``) gets a statement of its own with the LeadingKeys condition.
    """
    by_resources: dict[tuple[tuple[str, ...], str | None], list[str]] = {}
    for action, names in sorted(grant.items()):
        plain = tuple(sorted(n for n in names if " " not in n))
        if plain:
            by_resources.setdefault((plain, None), []).append(action)
        for name in sorted(n for n in names if " " in n):
            resource, pattern = name.split(" ", 1)
            by_resources.setdefault(((resource,), pattern), []).append(action)
    return [
        (tuple(actions), resources, pattern)
        for (resources, pattern), actions in by_resources.items()
    ]
