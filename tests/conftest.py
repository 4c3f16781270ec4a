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

from collections.abc import Callable, Generator, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, NoReturn  # noqa: E402

import moto  # noqa: E402
import pytest  # noqa: E402

from tests.support.botocore_cache import share_loaders  # noqa: E402

share_loaders()

from fanout_core.local.management_api import LocalManagementApi  # noqa: E402
from fanout_core.store import ConnectionStore  # noqa: E402
from tests.support import backends, issuer, tiers  # noqa: E402
from tests.support.backends import BACKENDS, SERVER_BACKENDS, Backend  # noqa: E402
from tests.support.clock import FakeClock  # noqa: E402
from tests.support.harness import Chat, Harness, make_chat, new_harness  # noqa: E402
from tests.support.issuer import JwksServer  # noqa: E402
from tests.support.machine import MAX_ATTEMPTS, TTL  # noqa: E402
from tests.support.tables import TablePool  # noqa: E402

# Fixtures that start a server (a backend process, or the local Management API over HTTP):
# a test using one is marked `server`, so that `pytest -m "not server"` runs in seconds.
SERVER_FIXTURES = {"moto_server_url", "dynalite_url", "local_api", "make_harness", "jwks_server"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs a server (a backend process or the local API) `server`,
    and the tiers' markers (tests/support/tiers.py)."""
    tiers.mark_tiers(items)
    for item in items:
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("backend") if callspec is not None else None
        fixtures = set(getattr(item, "fixturenames", ()))
        if backend in SERVER_BACKENDS or fixtures & SERVER_FIXTURES:
            item.add_marker(pytest.mark.server)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Leave out the modules of `ci` tests alone whose imports are slow, where `ci` is."""
    return True if tiers.skips_module(collection_path, config.option.markexpr) else None


@pytest.fixture(autouse=True)
def _no_backend_process_unless_marked(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A test not marked `server` fails if it starts dynalite or a moto server after all."""
    if request.node.get_closest_marker("server") is not None:
        return

    def refuse(*args: object, **kwargs: object) -> NoReturn:
        raise RuntimeError(f"{request.node.nodeid} starts a backend process: mark it `server`")

    monkeypatch.setattr(backends, "dynalite", refuse)
    monkeypatch.setattr(backends, "moto_server", refuse)


@pytest.fixture(scope="session")
def moto_server_url() -> Iterator[str]:
    with backends.moto_server() as url:
        yield url


@pytest.fixture(scope="session")
def dynalite_url() -> Iterator[str]:
    with backends.dynalite() as url:
        yield url


# moto in-process keeps its state from test to test (a mock started without a reset and
# stopped without removing data), so that its pooled tables outlive the test that made them.
MOTO = moto.mock_aws()


@pytest.fixture(scope="session")
def table_pools() -> dict[str, TablePool]:
    """Each backend's pool of tables in this test process (tests/support/tables.py)."""
    return {}


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, table_pools: dict[str, TablePool]) -> Iterator[Backend]:
    """Each backend in turn, its tables from its pool: emptied after the test."""
    name: str = request.param
    endpoint: str | None = None
    if name == "moto_server":
        endpoint = request.getfixturevalue("moto_server_url")
    elif name == "dynalite":
        endpoint = request.getfixturevalue("dynalite_url")
        backends.check_alive(endpoint)
    pool = table_pools.setdefault(name, TablePool(name, endpoint))
    if name == "moto":
        MOTO.start(reset=False)
    try:
        yield Backend(name, endpoint, pool)
        pool.wipe()
    finally:
        pool.handed.clear()
        if name == "moto":
            MOTO.stop(remove_data=False)


@pytest.fixture(scope="session")
def jwks_server() -> Iterator[JwksServer]:
    """A test issuer's key set (RSA and EC keys) over HTTP on 127.0.0.1."""
    with issuer.serving() as server:
        yield server


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(backend: Backend, clock: FakeClock) -> ConnectionStore:
    """A store over an empty table on the backend, with a clock the test moves."""
    config = backend.config()
    backend.ensure_table(config)
    return ConnectionStore(config, clock=clock)


@pytest.fixture
def local_api() -> Iterator[LocalManagementApi]:
    """The library's local Management API on 127.0.0.1, on a thread of its own."""
    with LocalManagementApi() as api:
        yield api


@pytest.fixture
def chat_with(
    backend: Backend,
    local_api: LocalManagementApi,
    clock: FakeClock,
    request: pytest.FixtureRequest,
) -> Callable[..., Chat]:
    """Chats on new tables: ``chat_with(strategy, **settings)``; sqs_batched's queue is
    the moto server's."""

    def make(strategy: str = "gsi_query", **settings: Any) -> Chat:
        sqs = None
        if strategy == "sqs_batched":
            sqs = request.getfixturevalue("moto_server_url")
        return make_chat(backend, local_api, clock, strategy, sqs_endpoint=sqs, **settings)

    return make


@pytest.fixture
def make_harness(
    backend: Backend, local_api: LocalManagementApi, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Harness]]:
    """Build harnesses (a new table each) for the state machines and hostile tests."""
    made: list[Harness] = []

    def make(strategy: str, **options: Any) -> Harness:
        sqs_endpoint = None
        if strategy == "sqs_batched" and backend.endpoint is not None:
            sqs_endpoint = request.getfixturevalue("moto_server_url")
        harness = new_harness(
            backend,
            local_api,
            strategy,
            sqs_endpoint=sqs_endpoint,
            ttl_seconds=TTL,
            max_attempts=MAX_ATTEMPTS,
            # A dropped client's 410 deletes its rows at once, as the machines' model says;
            # the rows a connection under FANOUT_CONNECTING_SECONDS old keeps are
            # tests/test_connecting.py's.
            connecting_seconds=0,
            **options,
        )
        made.append(harness)
        return harness

    yield make
    for harness in made:
        harness.drop()


@pytest.fixture(autouse=True)
def _fresh_runtime() -> Iterator[None]:
    """Handlers build their runtime per test, never from a previous test's."""
    from fanout_core.runtime import set_runtime

    set_runtime(None)
    yield
    previous = set_runtime(None)
    if previous is not None:
        previous.close()


# -- Hypothesis profiles (tests/test_properties.py, test_faults.py, test_hostile.py) --------
# `make test` and `make test-ci` run "fast"; `make test-thorough` sets
# HYPOTHESIS_PROFILE=thorough: 10x the examples, random each run. "fast" keeps Hypothesis'
# default of 100 examples for plain @given tests; the slow properties run a fixed fraction of
# max_examples (see `scaled` in tests/support/hyp_strategies.py). "fast" is derandomized: CI
# runs the same examples every time, so a red run is a regression, never a lucky draw.
# Examples talk to backends over the network: no deadline, and drawing data between network
# calls is not "too slow".
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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item,
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A test's state machine statistics, on its teardown report (see the summary)."""
    from tests.support.hyp_strategies import REPORT_KEY, machine_statistics

    report: pytest.TestReport = yield
    if report.when == "teardown" and item.config.getoption("--hypothesis-show-statistics"):
        statistics = machine_statistics(item.nodeid)
        if statistics is not None:
            report.__dict__[REPORT_KEY] = statistics
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Example counts of the state machines with --hypothesis-show-statistics."""
    from tests.support.hyp_strategies import report_machine_statistics

    report_machine_statistics(terminalreporter)
