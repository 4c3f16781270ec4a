"""The posting contract: how a post ends, how answers are classified, what a poster is.

``BotoPoster`` (the boto3 client) lives here; ``AsyncHttpPoster`` (signed HTTP/1.1 from an
event loop) in ``fanout_core.delivery.http_poster``. Both map every answer alike.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypedDict, runtime_checkable
from urllib.parse import urlsplit

import botocore.config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from fanout_core.clients import aws_client

if TYPE_CHECKING:
    from mypy_boto3_apigatewaymanagementapi import ApiGatewayManagementApiClient


class PostStatus(enum.Enum):
    """How a post ended, as the delivery loop needs to know it."""

    OK = "ok"
    GONE = "gone"  # 410: the connection no longer exists
    FORBIDDEN = "forbidden"  # 403: not retried, not deleted
    TOO_LARGE = "too_large"  # 413
    THROTTLED = "throttled"  # 429: retried
    SERVER_ERROR = "server_error"  # 5xx: retried
    # No answer came: a timeout, a refused connection, or one that broke mid-exchange.
    # Retried, although the post may have landed with only its answer lost.
    NO_ANSWER = "no_answer"
    ERROR = "error"  # anything else: not retried

    @property
    def retryable(self) -> bool:
        """True for statuses worth another attempt."""
        return self in (PostStatus.THROTTLED, PostStatus.SERVER_ERROR, PostStatus.NO_ANSWER)


@dataclass(frozen=True, slots=True)
class PostOutcome:
    """The status of one post and, for a failure, what the endpoint said."""

    status: PostStatus
    detail: str = ""


OK = PostOutcome(PostStatus.OK)

_BY_CODE = {
    "GoneException": PostStatus.GONE,
    "ForbiddenException": PostStatus.FORBIDDEN,
    "PayloadTooLargeException": PostStatus.TOO_LARGE,
    "LimitExceededException": PostStatus.THROTTLED,
    "TooManyRequestsException": PostStatus.THROTTLED,
}
_BY_HTTP_STATUS = {
    410: PostStatus.GONE,
    403: PostStatus.FORBIDDEN,
    413: PostStatus.TOO_LARGE,
    429: PostStatus.THROTTLED,
}


def classify(code: str, http_status: int) -> PostStatus:
    """The PostStatus of an error answer, by error code first, then HTTP status."""
    if code in _BY_CODE:
        return _BY_CODE[code]
    if http_status in _BY_HTTP_STATUS:
        return _BY_HTTP_STATUS[http_status]
    return PostStatus.SERVER_ERROR if http_status >= 500 else PostStatus.ERROR


def failed(code: str, http_status: int) -> PostOutcome:
    """The outcome of an error answer, with the status and code as its detail."""
    return PostOutcome(classify(code, http_status), f"{http_status} {code}".strip())


class Poster(Protocol):
    """Posts one frame to one connection; never raises for an answer from the endpoint."""

    def post(self, endpoint: str, connection_id: str, data: bytes) -> PostOutcome:
        """Post ``data`` to ``connection_id`` at ``endpoint``."""
        ...

    def close(self) -> None:
        """Release what the poster holds (connections, threads); it may be used again after."""
        ...


@runtime_checkable
class Closer(Protocol):
    """Closes one connection; never raises for an answer from the endpoint.

    Apart from ``Poster`` so that a poster which cannot close connections remains a poster.
    """

    def delete(self, endpoint: str, connection_id: str) -> PostOutcome:
        """Close ``connection_id`` at ``endpoint`` (``DELETE @connections``); GONE if it was."""
        ...


@runtime_checkable
class AsyncPoster(Poster, Protocol):
    """A poster that can also post from an event loop without blocking it."""

    async def post_async(self, endpoint: str, connection_id: str, data: bytes) -> PostOutcome:
        """Post ``data`` to ``connection_id`` at ``endpoint``; never raises for an answer."""
        ...

    async def aclose(self) -> None:
        """Close the connections the running loop holds."""
        ...


def async_poster(poster: Poster) -> AsyncPoster | None:
    """``poster`` if it can post asynchronously, else None."""
    return poster if isinstance(poster, AsyncPoster) else None


def endpoint_region(endpoint: str, default: str) -> str:
    """The region in an ``execute-api`` host, which the request must be signed for."""
    host = urlsplit(endpoint).hostname or ""
    parts = host.split(".")
    if len(parts) >= 4 and parts[1] == "execute-api":
        return parts[2]
    return default


_clients: dict[tuple[str, int, float, str], ApiGatewayManagementApiClient] = {}
_clients_lock = threading.Lock()


def management_client(
    endpoint: str, *, pool_size: int = 32, timeout: float = 5.0, region: str = "us-east-1"
) -> ApiGatewayManagementApiClient:
    """The ``apigatewaymanagementapi`` client for ``endpoint``, built once per container."""
    key = (endpoint, pool_size, timeout, region)
    client = _clients.get(key)
    if client is None:
        with _clients_lock:
            client = _clients.get(key)
            if client is None:
                config = botocore.config.Config(
                    # Retries are the delivery loop's, with jitter and a bound it reports.
                    retries={"total_max_attempts": 1, "mode": "standard"},
                    connect_timeout=timeout,
                    read_timeout=timeout,
                    max_pool_connections=pool_size,
                )
                client = aws_client(
                    "apigatewaymanagementapi", endpoint_url=endpoint, region=region, config=config
                )
                _clients[key] = client
    return client


class PosterSettings(TypedDict, total=False):
    """What every poster takes: see ``EndpointPoster``."""

    override: str | None
    pool_size: int
    timeout: float
    region: str


class EndpointPoster:
    """Settings every poster has.

    ``override`` replaces every connection's endpoint (as
    ``AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI`` does); ``pool_size`` is the connections kept
    open; ``timeout`` the seconds to connect and to answer; ``region`` signs posts to an
    endpoint that is not an ``execute-api`` host.
    """

    def __init__(
        self,
        *,
        override: str | None = None,
        pool_size: int = 32,
        timeout: float = 5.0,
        region: str = "us-east-1",
    ) -> None:
        self.override = override
        self.pool_size = pool_size
        self.timeout = timeout  # read at each post
        self.region = region


class BotoPoster(EndpointPoster):
    """Posts with boto3's ``post_to_connection``.

    Slower than ``AsyncHttpPoster`` (about 1 ms of CPU per post), but it goes wherever boto3
    goes, through an HTTPS proxy included.
    """

    def post(self, endpoint: str, connection_id: str, data: bytes) -> PostOutcome:
        """Post ``data``; map every answer to a PostOutcome."""
        client = self._client(endpoint)
        return _answered(lambda: client.post_to_connection(ConnectionId=connection_id, Data=data))

    def delete(self, endpoint: str, connection_id: str) -> PostOutcome:
        """Close the connection (``DELETE @connections/{id}``); GONE if it was already."""
        client = self._client(endpoint)
        return _answered(lambda: client.delete_connection(ConnectionId=connection_id))

    def _client(self, endpoint: str) -> ApiGatewayManagementApiClient:
        return management_client(
            self.override or endpoint,
            pool_size=self.pool_size,
            timeout=self.timeout,
            region=endpoint_region(endpoint, self.region),
        )

    def close(self) -> None:
        """Nothing to release: the clients are the container's, kept for its next invocation."""


def _answered(call: Callable[[], object]) -> PostOutcome:
    """Run one Management API call; map its answer (or its lack) to a PostOutcome."""
    try:
        call()
    except ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", ""))
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        return failed(code, status)
    except (
        ReadTimeoutError,
        ConnectTimeoutError,
        EndpointConnectionError,
        ConnectionClosedError,
    ) as error:
        return PostOutcome(PostStatus.NO_ANSWER, type(error).__name__)
    return OK
