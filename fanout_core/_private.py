"""Every use of a private asyncio, botocore or PynamoDB internal, in one place.

Each is a documented choice with a fallback in mind: if a release of Python, botocore or
PynamoDB changes one, this is the only file to mend, and ``tests/test_http_poster.py`` or
``tests/test_store.py`` fails first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import asyncio  # only delivery needs it, and it costs cold start

    from mypy_boto3_dynamodb import DynamoDBClient
    from pynamodb.models import Model


def unread_bytes(reader: asyncio.StreamReader) -> int:
    """Bytes a stream reader has buffered that nobody asked for.

    Private: ``StreamReader._buffer`` (CPython 3.11-3.13). asyncio has no public way to ask
    whether a server sent something unasked (a 408 before it hangs up) on an idle
    keep-alive connection; urllib3 asks the socket instead, which asyncio hides.
    A reader without it counts as empty: the connection is then reused, and a stale one is
    caught when its answer fails to parse, as before.
    """
    buffer = getattr(reader, "_buffer", b"")
    return len(buffer)


def error_code(status: int, headers: Mapping[str, str], body: bytes) -> str:
    """The error code of an error answer, exactly as botocore's rest-json parser derives it.

    Private use of a public class: ``RestJSONParser.parse`` is called without an output
    shape, which botocore's own clients never do; for an error answer it reads only
    ``x-amzn-ErrorType`` and the body's ``__type`` / ``code``, which is what we need.
    """
    from botocore.parsers import RestJSONParser

    parsed = RestJSONParser().parse(
        {"status_code": status, "headers": dict(headers), "body": body},
        None,  # type: ignore[arg-type]  # no output shape: an error answer is parsed without one
    )
    return str(parsed.get("Error", {}).get("Code", ""))


def share_connection(models: Iterable[type[Model]]) -> None:
    """Give every model the first one's PynamoDB connection (one botocore client).

    Private: ``Model._get_connection`` and ``Model._connection``. PynamoDB builds one
    connection per model class, and each costs a service-model load at cold start; it has no
    public way to share one.
    """
    first, *rest = list(models)
    shared = first._get_connection()
    for model in rest:
        model._connection = shared


def dynamodb_client(model: type[Model]) -> DynamoDBClient:
    """The botocore client behind a model's PynamoDB connection: its retries and hooks.

    Private: ``Model._get_connection``; ``Connection.client`` is public. Used for the calls
    PynamoDB has no page-level API for (BatchGetItem with consumed capacity).
    """
    client: Any = model._get_connection().connection.client
    return cast("DynamoDBClient", client)
