"""The built wheel: `fanout_core` is its only top-level name, and an app with a `strategies`
module of its own installs it and publishes on every built-in strategy.

The wheel is built from a copy of the sources (pip, with the venv's setuptools: no download),
installed with pip into a new venv that has no pip of its own. The library's dependencies
(PynamoDB, boto3) come from this venv's site-packages through a ``.pth`` line, which adds the
directory but not the ``.pth`` files in it: the editable install's finder stays out, so
``fanout_core`` can only come from the wheel.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import boto3
import pytest

from fanout_core.config import FanoutConfig
from fanout_core.deploy import package
from fanout_core.local.management_api import LocalManagementApi
from fanout_core.store import ConnectionStore
from fanout_core.table import create_table
from tests.support.backends import STRATEGIES

ROOT = Path(__file__).resolve().parent.parent
PIP = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]


def build_wheel(out: Path) -> Path:
    """The wheel, as make package builds it: from a copy of the sources, in ``out``."""
    assert {p.name for p in package.sources(ROOT)} == {
        "pyproject.toml",
        "README.md",
        "fanout_core",
        "strategies",
    }
    return package.build_wheel(ROOT, out)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


def venv_of(home: Path, *paths: Path) -> Path:
    """A new venv without pip whose site-packages adds ``paths`` (a ``.pth``); its python."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(home)], check=True, timeout=120
    )
    python = home / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site, "paths.pth").write_text("".join(f"{path}\n" for path in paths))
    return python


@pytest.fixture(scope="module")
def venv_python(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv with the wheel installed by pip, dependencies from this one; its python."""
    python = venv_of(tmp_path_factory.mktemp("venv"), Path(sysconfig.get_paths()["purelib"]))
    subprocess.run(
        [*PIP, "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return python


def test_the_wheel_installs_fanout_core_alone(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    (dist_info,) = (name for name in top if name.endswith(".dist-info"))
    assert dist_info.startswith("fanout_core-")
    assert top == {"fanout_core", dist_info}


def test_the_wheel_holds_every_source_file(wheel: Path) -> None:
    """Modules, ``py.typed``, the schema, the console's files and the client: nothing left out."""
    expected = set()
    for folder, into in (("fanout_core", "fanout_core"), ("strategies", "fanout_core/strategies")):
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                expected.add(f"{into}/{path.relative_to(ROOT / folder).as_posix()}")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n for n in names if not n.split("/")[0].endswith(".dist-info")} == expected


APP = """
import json, os, sys

import strategies  # the app's own module, imported first, as an app would

import boto3
import fanout_core
from fanout_core import Fanout
from fanout_core.handlers import sqs_worker
from fanout_core.local.sqs_pump import SqsEventSource
from fanout_core.strategy import strategy_class

results = {}
for name in sys.argv[1:]:
    fanout = Fanout.from_env({**os.environ, "FANOUT_STRATEGY": name})
    result = fanout.publish({"via": name}, room="lobby")
    if name == "sqs_batched":
        sqs = boto3.client("sqs", endpoint_url=os.environ["AWS_ENDPOINT_URL_SQS"])
        SqsEventSource(sqs, os.environ["FANOUT_QUEUE_URL"], sqs_worker).drain()
    fanout.close()
    results[name] = {"queue_messages": result.queue_messages, "delivered": result.delivered,
                     "module": strategy_class(name).__module__}
print(json.dumps({
    "results": results,
    "app_strategies": strategies.__file__,
    "fanout_core": fanout_core.__file__,
    "strategy_modules": sorted(m for m in sys.modules if "strategies" in m.split(".")),
}))
"""


def test_an_app_with_its_own_strategies_publishes(
    venv_python: Path,
    tmp_path: Path,
    moto_server_url: str,
    local_api: LocalManagementApi,
) -> None:
    """The app imports its ``strategies`` module first; the library never uses that name."""
    app = tmp_path / "app"
    app.mkdir()
    (app / "strategies.py").write_text("MINE = True\n")
    (app / "app.py").write_text(textwrap.dedent(APP))
    config = FanoutConfig(table=f"wheel-{tmp_path.name[-12:]}", dynamodb_endpoint=moto_server_url)
    create_table(config)
    store = ConnectionStore(config)
    members = [local_api.connections.open() for _ in range(2)]
    for cid in members:
        store.connect(cid, local_api.url, rooms=["lobby"])
    sqs = boto3.client("sqs", endpoint_url=moto_server_url)
    queue_url = sqs.create_queue(QueueName=f"wheel-{tmp_path.name[-12:]}")["QueueUrl"]
    env = {
        **os.environ,
        "FANOUT_TABLE": config.table,
        "FANOUT_QUEUE_URL": queue_url,
        "AWS_ENDPOINT_URL_DYNAMODB": moto_server_url,
        "AWS_ENDPOINT_URL_SQS": moto_server_url,
        "AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI": local_api.url,
    }
    env.pop("PYTHONPATH", None)
    try:
        out = subprocess.run(
            [str(venv_python), "app.py", *STRATEGIES],
            cwd=app,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        store.models.item.delete_table()
        sqs.delete_queue(QueueUrl=queue_url)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    site = venv_python.parent.parent / "lib"
    assert Path(report["fanout_core"]).is_relative_to(site)
    assert report["app_strategies"] == str(app / "strategies.py")
    assert report["strategy_modules"] == sorted(
        ["strategies", "fanout_core.strategies"]
        + [f"fanout_core.strategies.{name}" for name in STRATEGIES]
    )
    for name in STRATEGIES:
        assert report["results"][name]["module"] == f"fanout_core.strategies.{name}"
    assert report["results"]["sqs_batched"]["queue_messages"] > 0
    assert {
        name: r["delivered"] for name, r in report["results"].items() if name != "sqs_batched"
    } == {name: 2 for name in STRATEGIES if name != "sqs_batched"}
    for cid in members:
        frames = [json.loads(body) for body in local_api.connections.inbox(cid)]
        assert sorted(f["data"]["via"] for f in frames) == sorted(STRATEGIES)
