"""What Lambda runs, and nothing else: a directory for ``CodeUri`` and a layer zip.

``python -m fanout_core.deploy.package`` (``make package``) installs the package and its
dependencies for Lambda's platform with pip, leaves out what Lambda's Python runtime already
has (boto3 and its dependencies: :data:`BOTO3_FLOOR` is the oldest the code runs with) and
the parts of the package no handler imports (:data:`LEFT_OUT`), and prints the sizes.

- ``function/``: the code directory (template.yaml's ``CodeUri``).
- ``layer.zip``: the same under ``python/``, for a layer next to your own code.
- ``authorizer/``: the same with the ``jwt`` extra (PyJWT and its crypto part), for the
  ``$connect`` authorizer alone: the other functions do without its ~10 MB.

The full wheel (``pip install fanout-core[local]``) stays as it is.
"""

from __future__ import annotations

import argparse
import compileall
import json
import py_compile
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

# Lambda's Python runtime comes with boto3, and so with these: installing them again would
# add ~25 MB unpacked to every function. The code needs boto3 at least this recent
# (tests/test_package.py runs the handlers with exactly this one).
RUNTIME_PROVIDED = frozenset(
    {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3"}
)
BOTO3_FLOOR = "1.34.0"
# Parts of fanout_core that only people, the CLI, the local server and deployments use.
LEFT_OUT = (
    "cli",  # the fanout command
    "local",  # fanout serve: the emulator, the console, the local backends
    "simulate",  # the simulator
    "cost.py",  # the cost model
    "sizes.py",  # its item sizes
    "table.py",  # fanout table create
    "client",  # the JavaScript client the console serves
    "schema",  # the protocol's JSON Schema, for client authors
    "deploy",  # this packager and the IAM description
    "cdk",  # the CDK construct
)
DEFAULT_OUT = Path("build", "lambda")
FUNCTION_DIR = "function"
LAYER_ZIP = "layer.zip"
AUTHORIZER_DIR = "authorizer"
AUTHORIZER_EXTRAS = ("jwt",)  # what fanout_core.handlers.authorizer needs beyond the rest
PLATFORMS = {"x86_64": "manylinux2014_x86_64", "arm64": "manylinux2014_aarch64"}
PYTHON_VERSION = "3.12"  # template.yaml's Runtime


@dataclass(frozen=True)
class Sizes:
    """Bytes of the code directory (unpacked) and of the layer zip (packed and unpacked)."""

    function_bytes: int
    layer_zip_bytes: int
    layer_unpacked_bytes: int
    compiled: bool
    authorizer_bytes: int | None = None  # None: not built

    def lines(self) -> list[str]:
        mb = 1024 * 1024
        lines = [
            f"function directory: {self.function_bytes / mb:.2f} MB unpacked, without boto3",
            f"layer zip: {self.layer_zip_bytes / mb:.2f} MB "
            f"({self.layer_unpacked_bytes / mb:.2f} MB unpacked)",
        ]
        if self.authorizer_bytes is not None:
            lines.append(
                f"authorizer directory: {self.authorizer_bytes / mb:.2f} MB unpacked, "
                "with PyJWT and cryptography"
            )
        return lines


def _pip(*args: str) -> list[str]:
    return [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args]


def sources(project: Path) -> list[Path]:
    """What the wheel is built from: pyproject.toml, the readme, the packages' folders."""
    meta = tomllib.loads((project / "pyproject.toml").read_text())
    setuptools = meta.get("tool", {}).get("setuptools", {})
    folders = {name.split(".")[0] for name in setuptools.get("packages", [])}
    folders = {f for f in folders if f not in setuptools.get("package-dir", {})}
    folders |= {folder.split("/")[0] for folder in setuptools.get("package-dir", {}).values()}
    readme = meta["project"].get("readme")
    files = ["pyproject.toml", *([readme] if isinstance(readme, str) else [])]
    return [project / name for name in [*files, *sorted(folders)]]


def build_wheel(project: Path, out: Path) -> Path:
    """The project's wheel, built in ``out`` from a copy of its sources with this
    environment's setuptools (in place, its ``build/`` would keep files deleted since)."""
    copy = out / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for path in sources(project):
        if path.is_dir():
            shutil.copytree(path, copy / path.name, ignore=ignore)
        else:
            copy.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, copy / path.name)
    dist = out / "dist"
    subprocess.run(
        _pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(dist), str(copy)),
        check=True,
    )
    (wheel,) = dist.glob("fanout_core-*.whl")
    return wheel


def _platform_options(arch: str, python_version: str) -> list[str]:
    return [
        "--platform",
        PLATFORMS[arch],
        "--implementation",
        "cp",
        "--python-version",
        python_version,
        "--only-binary=:all:",
    ]


def requirements(wheel: Path, extras: Sequence[str], platform: list[str]) -> list[str]:
    """``name==version`` of every distribution to install, the runtime's own left out."""
    target = f"{wheel}[{','.join(extras)}]" if extras else str(wheel)
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch, "report.json")
        dry_run = ["--dry-run", "--ignore-installed", "--report", str(report)]
        target_dir = ["--target", str(Path(scratch, "t"))]
        subprocess.run(_pip("install", *dry_run, *target_dir, *platform, target), check=True)
        installs = json.loads(report.read_text())["install"]
    pinned = []
    for item in installs:
        name, version = item["metadata"]["name"], item["metadata"]["version"]
        if name.lower() not in RUNTIME_PROVIDED and name.lower() != "fanout-core":
            pinned.append(f"{name}=={version}")
    return sorted(pinned)


def _left_out(root: Path) -> Iterator[Path]:
    package = root / "fanout_core"
    yield from (package / name for name in LEFT_OUT)
    yield root / "bin"  # the fanout command's script
    yield from root.rglob("__pycache__")


def install(wheel: Path, into: Path, extras: Sequence[str], arch: str, python: str) -> None:
    """fanout_core (less :data:`LEFT_OUT`) and its dependencies (less the runtime's) in ``into``."""
    platform = _platform_options(arch, python)
    pinned = requirements(wheel, extras, platform)
    options = ["--no-deps", "--no-compile", "--target", str(into), *platform]
    subprocess.run(_pip("install", *options, str(wheel), *pinned), check=True)
    for path in _left_out(into):
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def compile_for(into: Path, python: str) -> bool:
    """Compile every module to ``.pyc`` if this interpreter is the target ``python``.

    Lambda's code directory is read-only: without them each cold start compiles every module
    it imports. Unchecked-hash files are used without a look at the source's time stamp.
    """
    if python != f"{sys.version_info.major}.{sys.version_info.minor}":
        return False
    mode = py_compile.PycInvalidationMode.UNCHECKED_HASH
    if not compileall.compile_dir(into, quiet=1, invalidation_mode=mode, workers=0):
        raise RuntimeError(f"compiling {into} failed")
    return True


def _bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def write_layer(function: Path, layer: Path) -> None:
    """The code directory under ``python/``, where Lambda puts a layer's Python on the path."""
    with zipfile.ZipFile(layer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(function.rglob("*")):
            if path.is_file():
                archive.write(path, Path("python", path.relative_to(function)).as_posix())


def package(
    out: Path,
    *,
    wheel: Path | None = None,
    project: Path = Path("."),
    extras: Sequence[str] = (),
    arch: str = "x86_64",
    python: str = PYTHON_VERSION,
    authorizer: bool = True,
) -> Sizes:
    """Build ``out/function/``, ``out/layer.zip`` and (``authorizer``) ``out/authorizer/``,
    each replaced; their sizes."""
    function = out / FUNCTION_DIR
    layer = out / LAYER_ZIP
    signin = out / AUTHORIZER_DIR
    shutil.rmtree(function, ignore_errors=True)
    shutil.rmtree(signin, ignore_errors=True)
    layer.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        wheel = wheel or build_wheel(project, Path(scratch))
        install(wheel, function, extras, arch, python)
        if authorizer:
            install(wheel, signin, sorted({*extras, *AUTHORIZER_EXTRAS}), arch, python)
    compiled = compile_for(function, python)
    if authorizer:
        compile_for(signin, python)
    write_layer(function, layer)
    with zipfile.ZipFile(layer) as archive:
        unpacked = sum(info.file_size for info in archive.infolist())
    signin_bytes = _bytes(signin) if authorizer else None
    return Sizes(_bytes(function), layer.stat().st_size, unpacked, compiled, signin_bytes)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fanout_core.deploy.package", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="default: %(default)s")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--project", type=Path, default=Path("."), help="default: .")
    source.add_argument("--wheel", type=Path, help="a built fanout_core wheel instead")
    parser.add_argument(
        "--extra", action="append", default=[], help="an optional extra to include, e.g. jwt"
    )
    parser.add_argument("--arch", choices=sorted(PLATFORMS), default="x86_64")
    parser.add_argument(
        "--no-authorizer",
        action="store_true",
        help="skip authorizer/, the sign-in function's code (with the jwt extra)",
    )
    parser.add_argument("--python", default=PYTHON_VERSION, help="default: %(default)s")
    args = parser.parse_args(argv)
    sizes = package(
        args.out,
        wheel=args.wheel,
        project=args.project,
        extras=args.extra,
        arch=args.arch,
        python=args.python,
        authorizer=not args.no_authorizer,
    )
    built = [f"{args.out / FUNCTION_DIR}/", str(args.out / LAYER_ZIP)]
    if not args.no_authorizer:
        built.append(f"{args.out / AUTHORIZER_DIR}/")
    print(", ".join(built))
    for line in sizes.lines():
        print(line)
    if not sizes.compiled:
        running = f"{sys.version_info.major}.{sys.version_info.minor}"
        print(
            f"not compiled: this is Python {running}, the target {args.python}; run this with "
            f"python{args.python} to ship .pyc files (else each cold start compiles its imports)"
        )
    print(f"not included: boto3 (Lambda's runtime has it; {BOTO3_FLOOR} or later needed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
