"""Every use of a private asyncio or botocore internal, in one place.

Each is a documented choice with a fallback in mind: if a release of Python or botocore
changes one, this is the only file to mend, and ``tests/test_http_poster.py`` fails first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio  # only delivery needs it, and it costs cold start


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
