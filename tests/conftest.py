"""Fixtures: the three DynamoDB backends and a fresh table on each."""

from __future__ import annotations

import os

# Fake credentials before anything builds a client; moto must be imported before PynamoDB
# builds its first connection for mock_aws() to intercept it.
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ["AWS_SESSION_TOKEN"] = "testing"
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
os.environ.pop("AWS_PROFILE", None)
for _name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "FANOUT_TABLE"):
    os.environ.pop(_name, None)

import uuid  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import moto  # noqa: E402
import pytest  # noqa: E402

from fanout_core.config import FanoutConfig  # noqa: E402
from fanout_core.local.management_api import LocalManagementApi  # noqa: E402
from fanout_core.store import ConnectionStore  # noqa: E402
from fanout_core.table import create_table  # noqa: E402
from tests import backends  # noqa: E402
from tests.clock import FakeClock  # noqa: E402

BACKENDS = ["moto", "moto_server", "dynalite"]


@dataclass(frozen=True)
class Backend:
    """Where a test's table lives: ``endpoint`` None means moto in-process."""

    name: str
    endpoint: str | None

    def config(self, **overrides: object) -> FanoutConfig:
        """A config for a new, uniquely named table on this backend."""
        values: dict[str, object] = {
            "table": f"t-{uuid.uuid4().hex[:12]}",
            "dynamodb_endpoint": self.endpoint,
        }
        values.update(overrides)
        return FanoutConfig(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def moto_server_url() -> Iterator[str]:
    with backends.moto_server() as url:
        yield url


@pytest.fixture(scope="session")
def dynalite_url() -> Iterator[str]:
    with backends.dynalite() as url:
        yield url


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """Each backend in turn; moto in-process gets a fresh mock per test."""
    name: str = request.param
    if name == "moto":
        with moto.mock_aws():
            yield Backend(name, None)
    elif name == "moto_server":
        yield Backend(name, request.getfixturevalue("moto_server_url"))
    else:
        url = request.getfixturevalue("dynalite_url")
        backends.check_alive(url)
        yield Backend(name, url)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(backend: Backend, clock: FakeClock) -> Iterator[ConnectionStore]:
    """A store over a new table on the backend, with a clock the test moves."""
    config = backend.config()
    create_table(config)
    store = ConnectionStore(config, clock=clock)
    yield store
    if backend.endpoint is not None:
        store.models.item.delete_table()


@pytest.fixture
def local_api() -> Iterator[LocalManagementApi]:
    """The library's local Management API on 127.0.0.1, on a thread of its own."""
    with LocalManagementApi() as api:
        yield api


@pytest.fixture(autouse=True)
def _fresh_runtime() -> Iterator[None]:
    """Handlers build their runtime per test, never from a previous test's."""
    from fanout_core.runtime import set_runtime

    set_runtime(None)
    yield
    previous = set_runtime(None)
    if previous is not None:
        previous.close()


STRATEGIES = ["full_scan", "gsi_query", "parallel_scan", "sqs_batched"]
