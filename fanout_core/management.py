"""Posting to connections through the API Gateway Management API, with one client per endpoint."""

from __future__ import annotations

import enum
import threading
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import boto3
import botocore.config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)


class PostStatus(enum.Enum):
    """How a post ended, as the delivery loop needs to know it."""

    OK = "ok"
    GONE = "gone"  # 410: the connection no longer exists
    FORBIDDEN = "forbidden"  # 403: not retried, not deleted
    TOO_LARGE = "too_large"  # 413
    THROTTLED = "throttled"  # 429: retried
    SERVER_ERROR = "server_error"  # 5xx: retried
    TIMEOUT = "timeout"  # no answer in time, or the connection broke: retried
    ERROR = "error"  # anything else: not retried

    @property
    def retryable(self) -> bool:
        """True for statuses worth another attempt."""
        return self in (PostStatus.THROTTLED, PostStatus.SERVER_ERROR, PostStatus.TIMEOUT)


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


def classify(code: str, http_status: int) -> PostStatus:
    """The PostStatus of an error answer, by error code first, then HTTP status."""
    if code in _BY_CODE:
        return _BY_CODE[code]
    if http_status == 410:
        return PostStatus.GONE
    if http_status == 403:
        return PostStatus.FORBIDDEN
    if http_status == 413:
        return PostStatus.TOO_LARGE
    if http_status == 429:
        return PostStatus.THROTTLED
    if http_status >= 500:
        return PostStatus.SERVER_ERROR
    return PostStatus.ERROR


class Poster(Protocol):
    """Posts one frame to one connection; never raises for an answer from the endpoint."""

    def post(self, endpoint: str, connection_id: str, data: bytes) -> PostOutcome:
        """Post ``data`` to ``connection_id`` at ``endpoint``."""
        ...


_clients: dict[tuple[str, int, float, str], Any] = {}
_clients_lock = threading.Lock()


def management_client(
    endpoint: str, *, pool_size: int = 32, timeout: float = 5.0, region: str = "us-east-1"
) -> Any:
    """The boto3 ``apigatewaymanagementapi`` client for ``endpoint``, built once per container."""
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
                client = boto3.session.Session().client(
                    "apigatewaymanagementapi",
                    endpoint_url=endpoint,
                    region_name=region,
                    config=config,
                )
                _clients[key] = client
    return client


def endpoint_region(endpoint: str, default: str) -> str:
    """The region in an ``execute-api`` host, which the request must be signed for."""
    host = urlsplit(endpoint).hostname or ""
    parts = host.split(".")
    if len(parts) >= 4 and parts[1] == "execute-api":
        return parts[2]
    return default


class BotoPoster:
    """Posts with boto3's ``post_to_connection``; ``override`` replaces every endpoint."""

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
        self.timeout = timeout
        self.region = region

    def post(self, endpoint: str, connection_id: str, data: bytes) -> PostOutcome:
        """Post ``data``; map every answer to a PostOutcome."""
        client = management_client(
            self.override or endpoint,
            pool_size=self.pool_size,
            timeout=self.timeout,
            region=endpoint_region(endpoint, self.region),
        )
        try:
            client.post_to_connection(ConnectionId=connection_id, Data=data)
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
            return PostOutcome(classify(code, status), f"{status} {code}".strip())
        except (ReadTimeoutError, ConnectTimeoutError) as error:
            return PostOutcome(PostStatus.TIMEOUT, type(error).__name__)
        except (EndpointConnectionError, ConnectionClosedError) as error:
            return PostOutcome(PostStatus.TIMEOUT, type(error).__name__)
        return OK
