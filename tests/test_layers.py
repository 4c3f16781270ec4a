"""A message's way runs one direction: handler -> strategy -> store -> delivery -> poster.

Every module of the package has a layer; a module may import only from its own layer or
below, at the top of the file or inside a function. The local server and the CLI sit on top
and nothing below imports them.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Lower first. Within delivery: the contract and its helpers, then the poster, then the
# Deliverer that uses both.
LAYERS: list[tuple[str, ...]] = [
    (
        "_lazy",
        "_private",
        "_version",
        "clients",
        "errors",
        "emf",
        "config",
        "metrics",
        "logs",
        "capacity",
    ),
    ("keys", "ranges", "subprotocol"),
    ("audience", "message"),
    ("models", "result", "policy"),
    ("outgoing",),
    (
        "delivery.backoff",
        "delivery.posting",
        "delivery.loop",
        "delivery.rate",
        "delivery.signing",
    ),
    ("delivery.http11", "delivery.http_poster"),
    ("delivery.deliverer", "delivery"),
    ("reads", "memberships", "store", "ratelimit", "history"),
    ("strategy", "queue", "worker", "strategies"),
    ("publishing",),
    ("presence",),
    ("runtime", "table", "sizes", "cost", "simulate"),
    ("fanout",),
    ("events", "answers", "inbound", "tokens", "entries", "handlers", "signin"),
    ("cli", "local", "deploy", "cdk"),
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def module_name(path: Path) -> str:
    """The module's name inside the package: ``strategies/x.py`` is ``strategies.x``."""
    relative = path.relative_to(ROOT).with_suffix("")
    parts = [p for p in relative.parts if p != "__init__"]
    if parts[0] == "fanout_core":
        parts = parts[1:]
    return ".".join(parts) or "__init__"


def installed_name(path: Path) -> str:
    """Its name once installed: the ``strategies/`` folder is ``fanout_core.strategies``."""
    parts = [p for p in path.relative_to(ROOT).with_suffix("").parts if p != "__init__"]
    return ".".join(["fanout_core", *parts] if parts[0] == "strategies" else parts)


def rank_of(name: str) -> int:
    """The layer of a module: its own entry, or its package's."""
    while name not in RANK:
        if "." not in name:
            raise KeyError(name)
        name = name.rsplit(".", 1)[0]
    return RANK[name]


def is_module(name: str) -> bool:
    """Whether ``name`` is a module or package of the source tree (either spelling)."""
    parts = name.split(".")
    if parts[:2] == ["fanout_core", "strategies"]:
        parts = parts[1:]
    relative = Path(*parts)
    return (ROOT / relative).with_suffix(".py").exists() or (ROOT / relative).is_dir()


def absolute(node: ast.ImportFrom, path: Path) -> str | None:
    """The module a ``from`` import names, relative ones resolved against the installed name."""
    if not node.level:
        return node.module
    package = installed_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def imported(path: Path) -> set[str]:
    """Every fanout_core / strategies module the file imports, anywhere in it."""
    return imported_from(path, "fanout_core", "strategies")


def imported_from(path: Path, *packages: str) -> set[str]:
    """Every module of ``packages`` the file imports, anywhere in it.

    ``from package import module`` counts the module, not the package it sits in; a relative
    import counts under its installed name.
    """
    names: set[str] = set()

    def wanted(name: str) -> bool:
        return name.split(".")[0] in packages

    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            module = absolute(node, path)
            if module and wanted(module):
                for alias in node.names:
                    target = f"{module}.{alias.name}"
                    names.add(target if is_module(target) else module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names if wanted(alias.name))
    return names


def package_modules(name: str) -> str:
    return name.removeprefix("fanout_core.").removeprefix("fanout_core")


FILES = sorted(
    p
    for p in [
        *ROOT.joinpath("fanout_core").rglob("*.py"),
        *ROOT.joinpath("strategies").glob("*.py"),
    ]
    if p.name != "__init__.py" or p.parent.name == "delivery"
)


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_import_runs_back_up(path: Path) -> None:
    own = rank_of(module_name(path))
    upward = []
    for name in sorted(imported(path)):
        target = package_modules(name)
        rank = rank_of(target)
        if rank > own:
            upward.append(f"{target} (layer {rank})")
    assert not upward, f"{module_name(path)} (layer {own}) imports upward: {upward}"


def test_importing_a_poster_loads_nothing_above_it() -> None:
    """The packages re-export lazily: their ``__init__`` brings no upper layer along."""
    code = (
        "import json, sys, fanout_core.delivery.posting\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('fanout_core'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    loaded = [package_modules(name) for name in json.loads(out)]
    assert loaded == ["", "_lazy", "clients", "delivery", "delivery.posting"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_import_of_the_source_folder_name(path: Path) -> None:
    """Installed, the ``strategies/`` folder is ``fanout_core.strategies``: no top-level name.

    An app's own ``strategies`` module would shadow it (``'strategies' is not a package``).
    """
    top_level = sorted(name for name in imported(path) if name.split(".")[0] == "strategies")
    assert not top_level, f"{module_name(path)} imports {top_level}"


def test_every_module_has_a_layer() -> None:
    for path in FILES:
        rank_of(module_name(path))


def test_no_module_reaches_400_lines() -> None:
    """One job per module: a module that grows past this has two."""
    long = {
        str(path.relative_to(ROOT)): n
        for path in ROOT.joinpath("fanout_core").rglob("*.py")
        if (n := len(path.read_text().splitlines())) >= 400
    }
    assert not long, long


def test_only_the_cli_imports_the_simulator() -> None:
    """The simulator is a model for people, never part of what a Lambda runs."""
    importers = sorted(
        module_name(path)
        for path in FILES
        if any(package_modules(n).startswith("simulate") for n in imported(path))
        and not module_name(path).startswith("simulate")
    )
    assert importers == ["cli.simulate"]
    code = (
        "import json, sys, fanout_core.handlers, fanout_core.runtime, fanout_core.worker\n"
        "print(json.dumps([m for m in sys.modules if m.startswith('fanout_core.simulate')]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert json.loads(out) == []


BENCHMARKS = sorted(ROOT.joinpath("benchmarks").glob("*.py"))


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_benchmark_imports_a_test_module(path: Path) -> None:
    """The servers both start live in fanout_core.local.backends."""
    assert not imported_from(path, "tests"), f"{path.name} imports {imported_from(path, 'tests')}"


def allowed_benchmark_imports(name: str) -> set[str]:
    """A benchmark imports benchmarks.common (and the library) only; the report gathers their
    sections and ``run``, the entry point, drives them all; common imports none of them."""
    everyone = {f"benchmarks.{path.stem}" for path in BENCHMARKS} - {"benchmarks.__init__"}
    if name == "common":
        return set()
    if name == "run":
        return everyone - {"benchmarks.run"}
    if name == "report":
        return everyone - {"benchmarks.run", "benchmarks.report"}
    return {"benchmarks.common"}


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_benchmarks_import_one_common_module_and_nothing_back(path: Path) -> None:
    extra = imported_from(path, "benchmarks") - allowed_benchmark_imports(path.stem)
    assert not extra, f"{path.name} imports {sorted(extra)}"
