"""`make package`: what Lambda runs, from the artifact alone.

The artifact is built from the same wheel as tests/test_wheel.py. A venv sees only the code
directory and a stand-in for what Lambda's Python runtime brings (boto3 and its
dependencies, linked from this venv), in Lambda's order: code first, runtime last. Every
handler that template.yaml, the docs and the Serverless example name imports there, and
every module of the artifact does too; nothing in it imports what was left out.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import boto3
import pytest

from fanout_core.config import FanoutConfig
from fanout_core.deploy import package, permissions
from fanout_core.local.management_api import LocalManagementApi
from fanout_core.table import create_table
from tests.support import issuer
from tests.support.events import connect_event, disconnect_event, message_event
from tests.test_template import function_handlers
from tests.test_wheel import build_wheel, venv_of

ROOT = Path(__file__).resolve().parent.parent
MB = 1024 * 1024
PIP = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``make package``'s output, built from a copy of the sources."""
    out = tmp_path_factory.mktemp("lambda")
    # authorizer/ adds PyJWT and cryptography: test_the_authorizer_runs_from_its_artifact
    # (marker ci) builds it.
    package.package(out, wheel=build_wheel(out / "wheel"), authorizer=False)
    return out


def runtime_stand_in(into: Path, provided: dict[str, str] | None = None) -> Path:
    """Links to this venv's copies of what Lambda's runtime provides (boto3 and its deps)."""
    into.mkdir(parents=True, exist_ok=True)
    for name in sorted(package.RUNTIME_PROVIDED):
        dist = importlib.metadata.distribution(name)
        tops = {Path(str(f)).parts[0] for f in dist.files or ()}
        for top in tops:
            source = Path(str(dist.locate_file(top)))
            if top != "__pycache__" and not (into / top).exists():
                (into / top).symlink_to(source)
    return into


@pytest.fixture(scope="module")
def lambda_python(artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    scratch = tmp_path_factory.mktemp("runtime")
    runtime = runtime_stand_in(scratch / "var-runtime")
    return venv_of(scratch / "venv", artifact / package.FUNCTION_DIR, runtime)


def named_handlers() -> set[str]:
    """Every handler path template.yaml, the docs and the README name."""
    from tests.test_template import _transformed

    named = {
        f"{permissions.HANDLER_MODULE}.{h}" for h in function_handlers(_transformed()).values()
    }
    pattern = re.compile(r"\bfanout_core\.handlers\.([a-z_]+)\b")
    for page in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        named |= {f"fanout_core.handlers.{h}" for h in pattern.findall(page.read_text())}
    return named


IMPORT_ALL = """
import importlib, json, pkgutil, sys
import fanout_core, fanout_core.delivery
handlers = json.loads(sys.argv[1])
for path in handlers:
    module, _, name = path.rpartition(".")
    assert callable(getattr(importlib.import_module(module), name)), path
modules = [m.name for m in pkgutil.walk_packages(fanout_core.__path__, "fanout_core.")]
for name in modules:
    importlib.import_module(name)
for package in (fanout_core, fanout_core.delivery):
    for name in package.__all__:
        getattr(package, name)
import boto3, botocore, pynamodb
print(json.dumps({
    "modules": sorted(modules),
    "loaded": sorted(m for m in sys.modules if m.split(".")[0] in ("fanout_core",)),
    "boto3": boto3.__file__,
    "pynamodb": pynamodb.__file__,
}))
"""


def test_every_handler_imports_from_the_artifact_alone(
    artifact: Path, lambda_python: Path, tmp_path: Path
) -> None:
    handlers = sorted(named_handlers())
    assert len(handlers) >= len(permissions.BASE) + 1  # the eleven, and `websocket`
    out = subprocess.run(
        [str(lambda_python), "-c", IMPORT_ALL, json.dumps(handlers)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    code = artifact / package.FUNCTION_DIR
    assert Path(report["pynamodb"]).is_relative_to(code)
    assert not Path(report["boto3"]).is_relative_to(code)
    left_out = {f"fanout_core.{name.removesuffix('.py')}" for name in package.LEFT_OUT}
    for name in report["loaded"]:
        assert not any(name == m or name.startswith(f"{m}.") for m in left_out), name
    strategies = {f"fanout_core.strategies.{s}" for s in ("full_scan", "gsi_query")}
    assert strategies <= set(report["modules"])


def _runtime_imports(path: Path) -> set[str]:
    """The fanout_core modules a file imports, at the top or in a function, outside
    ``if TYPE_CHECKING:`` blocks (which never run)."""
    tree = ast.parse(path.read_text())
    skipped = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for child in block.body
        for node in ast.walk(child)
    }
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names |= {f"{node.module}.{a.name}" for a in node.names} | {node.module}
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
    return {n for n in names if n.split(".")[0] == "fanout_core"}


def test_no_module_in_the_artifact_imports_what_was_left_out(artifact: Path) -> None:
    """Lazy imports in functions too: importing the modules does not run those."""
    code = artifact / package.FUNCTION_DIR
    missing = {}
    for path in (code / "fanout_core").rglob("*.py"):
        for name in _runtime_imports(path):
            relative = Path(*name.split("."))
            parent = Path(*name.split(".")[:-1])
            found = any(
                (code / p).with_suffix(".py").exists() or (code / p / "__init__.py").exists()
                for p in (relative, parent)
            )
            if not found:
                missing[str(path.relative_to(code))] = name
    assert not missing, missing


def test_the_artifact_holds_what_lambda_runs_and_no_more(artifact: Path) -> None:
    code = artifact / package.FUNCTION_DIR
    tops = {p.name for p in code.iterdir()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"fanout_core", "pynamodb"}
    for name in package.LEFT_OUT:
        assert not (code / "fanout_core" / name).exists(), name
    assert not list(code.rglob("__pycache__"))
    function_bytes = sum(p.stat().st_size for p in code.rglob("*") if p.is_file())
    assert function_bytes < 3 * MB  # the issue's target for the function without boto3
    with zipfile.ZipFile(artifact / package.LAYER_ZIP) as layer:
        names = layer.namelist()
    assert names
    assert all(n.startswith("python/") for n in names)
    assert {n.removeprefix("python/") for n in names} == {
        p.relative_to(code).as_posix() for p in code.rglob("*") if p.is_file()
    }


def test_modules_are_compiled_only_for_the_interpreter_that_runs_them(
    artifact: Path, tmp_path: Path
) -> None:
    code = tmp_path / "code"
    shutil.copytree(artifact / package.FUNCTION_DIR, code)
    assert not package.compile_for(code, "3.12" if sys.version_info[:2] != (3, 12) else "3.13")
    assert not list(code.rglob("*.pyc"))
    assert package.compile_for(code, f"{sys.version_info.major}.{sys.version_info.minor}")
    tag = sys.implementation.cache_tag
    sources = {p.with_suffix("") for p in code.rglob("*.py")}
    compiled = {p.parent.parent / p.name.split(".")[0] for p in code.rglob(f"*.{tag}.pyc")}
    assert compiled == sources
    flags = {int.from_bytes(p.read_bytes()[4:8], "little") for p in code.rglob("*.pyc")}
    assert flags == {0b01}  # hash-based, unchecked: no look at the source's time stamp


def test_the_boto3_floor_is_the_packages() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert f"boto3>={package.BOTO3_FLOOR}" in project["dependencies"]


INVOKE = """
import json, os, sys
from fanout_core import handlers
events = json.loads(sys.argv[1])
answers = [getattr(handlers, name)(event, None) for name, event in events]
import boto3
print(json.dumps({"answers": answers, "boto3": boto3.__version__}))
"""


def run_handlers(
    python: Path, moto_server_url: str, local_api: LocalManagementApi, cwd: Path
) -> tuple[list[object], str, list[str]]:
    """connect, sendMessage and disconnect in the artifact's venv; answers, boto3, members."""
    config = FanoutConfig(table=f"pkg-{cwd.name[-12:]}", dynamodb_endpoint=moto_server_url)
    create_table(config)
    a, b = (local_api.connections.open() for _ in range(2))
    events = [
        ("connect", connect_event(a, rooms=["r"])),
        ("connect", connect_event(b, rooms=["r"])),
        ("send_message", message_event(a, {"action": "sendMessage", "room": "r", "data": "hi"})),
        ("disconnect", disconnect_event(b)),
    ]
    env = {
        **{k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        "FANOUT_TABLE": config.table,
        "AWS_ENDPOINT_URL_DYNAMODB": moto_server_url,
        "AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI": local_api.url,
    }
    try:
        out = subprocess.run(
            [str(python), "-c", INVOKE, json.dumps(events)],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        boto3.client("dynamodb", endpoint_url=moto_server_url).delete_table(TableName=config.table)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    texts = [json.loads(f)["data"] for f in local_api.connections.inbox(b)]
    return report["answers"], report["boto3"], texts


def test_the_handlers_run_from_the_artifact(
    lambda_python: Path, moto_server_url: str, local_api: LocalManagementApi, tmp_path: Path
) -> None:
    answers, _, received = run_handlers(lambda_python, moto_server_url, local_api, tmp_path)
    assert answers == [{"statusCode": 200}] * 4
    assert received == ["hi"]


@pytest.mark.ci
def test_the_handlers_run_with_the_oldest_boto3(
    artifact: Path,
    tmp_path: Path,
    moto_server_url: str,
    local_api: LocalManagementApi,
) -> None:
    """BOTO3_FLOOR, installed from the package index, as the runtime's boto3."""
    runtime = tmp_path / "var-runtime"
    floor = package.BOTO3_FLOOR
    subprocess.run(
        [*PIP, "install", "--target", str(runtime), f"boto3=={floor}", f"botocore=={floor}"],
        check=True,
        timeout=600,
    )
    python = venv_of(tmp_path / "venv", artifact / package.FUNCTION_DIR, runtime)
    answers, boto3_version, received = run_handlers(python, moto_server_url, local_api, tmp_path)
    assert boto3_version == floor
    assert answers == [{"statusCode": 200}] * 4
    assert received == ["hi"]


AUTHORIZE = """
import json, sys
from fanout_core import handlers
answer = handlers.authorizer(json.loads(sys.argv[1]), None)
import cryptography, jwt
print(json.dumps({"answer": answer, "jwt": jwt.__file__, "crypto": cryptography.__file__}))
"""


@pytest.mark.ci
def test_the_authorizer_runs_from_its_artifact(
    tmp_path: Path, jwks_server: issuer.JwksServer
) -> None:
    """authorizer/ alone (and the runtime's boto3) checks a token against a key set over
    HTTP: PyJWT and cryptography come from the artifact, built for this interpreter."""
    out = tmp_path / "lambda"
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    sizes = package.package(out, wheel=build_wheel(tmp_path / "wheel"), python=running)
    assert sizes.authorizer_bytes is not None
    code = out / package.AUTHORIZER_DIR
    assert {"jwt", "cryptography", "fanout_core"} <= {p.name for p in code.iterdir()}
    assert not (out / package.FUNCTION_DIR / "jwt").exists()  # the other functions go without
    python = venv_of(tmp_path / "venv", code, runtime_stand_in(tmp_path / "var-runtime"))
    jwks_server.mode, jwks_server.keys = "ok", [issuer.rsa_key(), issuer.ec_key()]
    token = issuer.sign(issuer.claims(jwks_server.issuer, sub="alice"), issuer.ec_key())
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(FANOUT_JWT_ISSUER=jwks_server.issuer, FANOUT_JWT_AUDIENCE=issuer.AUDIENCE)
    done = subprocess.run(
        [str(python), "-c", AUTHORIZE, json.dumps(issuer.request(token))],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["answer"]["principalId"] == "alice"
    assert report["answer"]["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    assert Path(report["jwt"]).is_relative_to(code)
    assert Path(report["crypto"]).is_relative_to(code)
