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


# -- Hypothesis profiles (tests/test_properties.py, test_faults.py, test_hostile.py) --------
# `make test` runs "fast"; `make test-thorough` sets HYPOTHESIS_PROFILE=thorough: 10x the
# examples, random each run. "fast" keeps Hypothesis' default of 100 examples for plain
# @given tests; the slow properties run a fixed fraction of max_examples (see `scaled` in
# tests/hyp_strategies.py). "fast" is derandomized: CI runs the same examples every time, so
# a red run is a regression, never a lucky draw. Examples talk to backends over the network:
# no deadline, and drawing data between network calls is not "too slow".
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "fast",
    max_examples=100,
    stateful_step_count=20,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough",
    max_examples=1000,
    stateful_step_count=40,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Example counts of the state machines with --hypothesis-show-statistics."""
    from tests.hyp_strategies import report_machine_statistics

    report_machine_statistics(terminalreporter)
