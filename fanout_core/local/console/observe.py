"""What the console reports: handler invocations, fan-outs, worker runs, Management API
calls, frames on the wire and the table's rows, each as a feed event.

It wraps what the local server runs (route handlers, the SQS worker) and listens to the
gateway, the Management API, the library's warnings and each invocation's metrics (the EMF
documents it would write on Lambda, with the fan-outs it counted): nothing in the library
knows it is there.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from fanout_core.config import FanoutConfig
from fanout_core.local.console.feed import ConsoleFeed
from fanout_core.local.gateway import GatewayEvent
from fanout_core.local.lambda_context import failed_invocation

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

Handler = Callable[[dict[str, Any], Any], Any]
MAX_ROWS = 5000  # a local table past this is shown in part
MAX_FRAME_CHARS = 4000  # frames longer than this are shown cut
REDACTED = "[redacted]"
# What a $connect's query string shows in the feed: the rooms, and the console's own tag of
# its test clients. Any other value may be a login token.
SHOWN_QUERY = ("room", "client")
# Header names that carry credentials, in part: their values never reach the feed.
SECRET_HEADER_WORDS = ("auth", "token", "cookie", "key", "secret", "session", "protocol")


def redact_query(query: Mapping[str, Any] | None) -> dict[str, Any]:
    """A $connect's query string for the feed: each name, and values only of SHOWN_QUERY."""
    return {
        name: values if name in SHOWN_QUERY else [REDACTED for _ in values or [None]]
        for name, values in (query or {}).items()
    }


def redact_headers(headers: Mapping[str, Any] | None) -> dict[str, Any]:
    """A $connect's headers for the feed: credentials-like ones (Authorization, Cookie,
    Sec-WebSocket-Protocol, which carries a browser's token, X-Api-Key...) redacted."""
    return {
        name: REDACTED if any(w in str(name).lower() for w in SECRET_HEADER_WORDS) else value
        for name, value in (headers or {}).items()
    }


def _cut(text: str | bytes | None) -> str | None:
    if text is None:
        return None
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return text if len(text) <= MAX_FRAME_CHARS else text[:MAX_FRAME_CHARS] + "…"


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, set | frozenset):
        return sorted(_plain(v) for v in value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


class Observer:
    """Reports to ``feed``; ``wrap_routes`` and ``wrap_worker`` instrument what the server runs."""

    def __init__(self, feed: ConsoleFeed, config: FanoutConfig) -> None:
        self.feed = feed
        self.config = config
        self._local = threading.local()  # the invocation running on this thread
        self._lock = threading.Lock()
        self._calls: list[dict[str, Any]] = []  # invocations running now, for 410 attribution
        self._rows: dict[str, dict[str, Any]] = {}
        self._wake = threading.Condition()
        self._due: float | None = None
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._client: DynamoDBClient | None = None
        self._log = _WarningLog(self)
        self._logger = logging.getLogger("fanout_core")

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Listen to the library's warnings and start the table watcher."""
        self._logger.addHandler(self._log)
        self._thread = threading.Thread(target=self._watch, name="fanout-console", daemon=True)
        self._thread.start()
        self.refresh()

    def stop(self) -> None:
        """Stop listening and watching."""
        self._logger.removeHandler(self._log)
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(5)

    # -- invocations --------------------------------------------------------------------

    @contextlib.contextmanager
    def _call(self, **what: Any) -> Any:
        call = {**what, "gone_ids": []}
        self._local.call = call
        with self._lock:
            self._calls.append(call)
        try:
            yield call
        finally:
            with self._lock:
                self._calls.remove(call)
            self._local.call = None

    def wrap_routes(self, routes: Mapping[str, Handler]) -> dict[str, Handler]:
        """Each route's handler, reporting its invocation."""
        return {route: self._wrap(route, handler) for route, handler in routes.items()}

    def _wrap(self, route: str, handler: Handler) -> Handler:
        @functools.wraps(handler)
        def invoke(event: dict[str, Any], context: Any) -> Any:
            request = event.get("requestContext") or {}
            cid = request.get("connectionId", "")
            answer: Any = None
            started = time.perf_counter()
            with self._call(route=route, connection_id=cid):
                try:
                    answer = handler(event, context)
                except BaseException:
                    # The gateway answers this 502; show what the client will see.
                    answer = failed_invocation(event)
                    raise
                finally:
                    self._invoked(route, event, answer, time.perf_counter() - started)
            return answer

        return invoke

    def _invoked(self, route: str, event: dict[str, Any], answer: Any, seconds: float) -> None:
        request = event.get("requestContext") or {}
        cid = request.get("connectionId", "")
        status = answer.get("statusCode", 200) if isinstance(answer, dict) else 200
        body = answer.get("body") if isinstance(answer, dict) else None
        detail: dict[str, Any] = {}
        call = getattr(self._local, "call", None) or {}
        if call.get("metrics"):
            detail["metrics"] = call["metrics"]
        if route == "$connect":
            detail["principal"] = (request.get("authorizer") or {}).get("principalId")
            # Tokens come in the query string and in headers: the feed shows neither's values.
            detail["query"] = redact_query(event.get("multiValueQueryStringParameters"))
            detail["headers"] = redact_headers(event.get("headers"))
        if route == "$disconnect":
            detail["close_code"] = request.get("disconnectStatusCode")
        self.feed.emit(
            "invoke",
            route=route,
            connection_id=cid,
            status=status,
            ms=round(seconds * 1000, 2),
            body=_cut(body) if isinstance(body, str) else None,
            **detail,
        )
        if isinstance(body, str) and body and route not in ("$connect", "$disconnect"):
            self.feed.emit(
                "wire", dir="out", connection_id=cid, via="route answer", frame=_cut(body)
            )
        self.refresh()

    def wrap_worker(self, worker: Handler) -> Handler:
        """The SQS worker, reporting each invocation and the messages it was given."""

        @functools.wraps(worker)
        def invoke(event: dict[str, Any], context: Any) -> Any:
            records = event.get("Records") or []
            started = time.perf_counter()
            answer: Any = None
            with self._call(route="sqs_worker", connection_id=""):
                try:
                    answer = worker(event, context)
                    return answer
                finally:
                    failures = (answer or {}).get("batchItemFailures", []) if answer else []
                    call = getattr(self._local, "call", None) or {}
                    self.feed.emit(
                        "worker",
                        metrics=call.get("metrics"),
                        records=len(records),
                        failed=len(failures) if answer is not None else len(records),
                        ms=round((time.perf_counter() - started) * 1000, 2),
                        messages=[
                            {"id": r.get("messageId"), "body": _cut(r.get("body", "")[:600])}
                            for r in records
                        ],
                    )
                    self.refresh()

        return invoke

    def result(self, kind: str, summary: dict[str, Any], *, source: str | None = None) -> None:
        """One fan-out's counts, with the invocation that ran it and the ids answered 410."""
        call = getattr(self._local, "call", None) or {}
        self.feed.emit(
            "fanout",
            source=source or kind,
            route=call.get("route"),
            connection_id=call.get("connection_id"),
            gone_ids=list(call.get("gone_ids", [])),
            **summary,
        )

    def publish(self, fanout: Any, data: Any, **audience: Any) -> dict[str, Any]:
        """``fanout.publish`` from the console's publish box (its fan-out is reported with
        its invocation's metrics)."""
        with self._call(route="publish", connection_id=""):
            try:
                summary: dict[str, Any] = fanout.publish(data, **audience).summary()
            finally:
                self.refresh()
        return summary

    def invocation_metrics(self, lines: Sequence[str], invocation: Any) -> None:
        """An invocation's EMF documents (as Lambda would log them) and the fan-outs it
        counted: a ``metrics`` event, and a ``fanout`` event for each result."""
        documents = [json.loads(line) for line in lines]
        values: dict[str, Any] = {}
        units: dict[str, str] = {}
        for document in documents:
            # A metric named by two directives (with and without Source) is one member.
            defined = {
                definition["Name"]: definition.get("Unit", "None")
                for directive in document["_aws"]["CloudWatchMetrics"]
                for definition in directive["Metrics"]
            }
            for name, unit in defined.items():
                units[name] = unit
                value = document[name]
                if isinstance(value, list):  # split over documents past 100 values
                    values[name] = [*values.get(name, []), *value]
                else:
                    values[name] = value
        call = getattr(self._local, "call", None)
        if call is not None:
            call["metrics"] = values
        self.feed.emit(
            "metrics",
            source=invocation.source,
            route=(call or {}).get("route"),
            connection_id=(call or {}).get("connection_id"),
            metrics=values,
            units=units,
            documents=len(documents),
        )
        for result in invocation.results:
            if result.strategy == "history":
                kind = "history"
            elif invocation.source == "sqs_worker":
                kind = "worker"
            else:
                kind = "fanout"
            source = "publish" if invocation.source == "publish" else kind
            self.result(kind, result.summary(), source=source)

    # -- the gateway and the Management API ----------------------------------------------

    def gateway_event(self, event: GatewayEvent) -> None:
        """A socket opened, a frame came in, a socket closed, an authorizer answered."""
        cid = event.connection_id
        if event.kind == "message":
            self.feed.emit(
                "wire", dir="in", connection_id=cid, route=event.route_key, frame=_cut(event.detail)
            )
        elif event.kind == "connect":
            self.feed.emit("socket", state="connecting", connection_id=cid)
        elif event.kind == "close":
            self.feed.emit(
                "socket", state="closed", connection_id=cid, code=event.status, reason=event.detail
            )
        elif event.kind == "authorize":
            self.feed.emit("authorize", connection_id=cid, status=event.status, reason=event.detail)

    def management_request(
        self, method: str, path: str, body: bytes, status: int, answer: bytes
    ) -> None:
        """One Management API call and its answer (status 0: none, a timeout)."""
        cid = path.split("/@connections/", 1)[-1] if "/@connections/" in path else ""
        if method == "POST" and status == 410:
            with self._lock:
                for call in self._calls:
                    call["gone_ids"].append(cid)
        self.feed.emit(
            "api",
            method=method,
            connection_id=cid,
            status=status,
            frame=_cut(body) if method == "POST" else None,
            answer=_cut(answer) or None,
        )
        # A publish from another process changes rows too; look once its posts settle.
        self.refresh(after=0.3)

    # -- the table ----------------------------------------------------------------------

    def refresh(self, after: float = 0.0) -> None:
        """Read the table again (soon, once for many asks) and report what changed."""
        due = time.monotonic() + after
        with self._wake:
            if self._due is None or due < self._due:
                self._due = due
            self._wake.notify()

    def _watch(self) -> None:
        while True:
            with self._wake:
                while not self._stopping and (self._due is None or self._due > time.monotonic()):
                    self._wake.wait(None if self._due is None else self._due - time.monotonic())
                if self._stopping:
                    return
                self._due = None
            try:
                self.diff(self.scan())
            except Exception as error:  # a table being created, a backend going away
                self.feed.emit(
                    "log", level="WARNING", message=f"console: table read failed: {error}"
                )

    def scan(self) -> list[dict[str, Any]]:
        """Every row of the table (up to ``MAX_ROWS``), as plain data."""
        from boto3.dynamodb.types import TypeDeserializer

        if self._client is None:
            import boto3

            self._client = boto3.client(
                "dynamodb",
                endpoint_url=self.config.dynamodb_endpoint,
                region_name=self.config.region,
            )
        plain = TypeDeserializer()
        rows: list[dict[str, Any]] = []
        pages = self._client.get_paginator("scan").paginate(
            TableName=self.config.table, ConsistentRead=True
        )
        for page in pages:
            for item in page.get("Items", []):
                row = {name: _plain(plain.deserialize(value)) for name, value in item.items()}
                row["key"] = f"{row.get('pk')} {row.get('sk')}"
                rows.append(row)
            if len(rows) >= MAX_ROWS:
                break
        return rows

    def diff(self, rows: list[dict[str, Any]]) -> None:
        """Report the rows that appeared, changed or went since the last read."""
        now = {row["key"]: row for row in rows}
        upsert = [row for key, row in now.items() if self._rows.get(key) != row]
        delete = [key for key in self._rows if key not in now]
        self._rows = now
        if upsert or delete:
            self.feed.emit("rows", upsert=upsert, delete=delete)


class _WarningLog(logging.Handler):
    """The library's warnings and errors as log events."""

    def __init__(self, observer: Observer) -> None:
        super().__init__(logging.WARNING)
        self.observer = observer

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            self.observer.feed.emit("log", level=record.levelname, message=record.getMessage())
            if not logging.getLogger().handlers and logging.lastResort is not None:
                # With this handler attached, Python's last-resort stderr output no longer
                # runs: print what it would have.
                logging.lastResort.handle(record)
