"""``--env-file``: the variables ``fanout serve`` prints, in a file instead of a shell.

One ``NAME=value`` a line, as dotenv, ``docker --env-file`` and ``env $(cat FILE)`` read
them. A command reads it for itself only, so the shell's own AWS credentials stay as they are.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from fanout_core.cli.failures import CommandError

# Only what fanout and boto read: a file cannot reach PATH, PYTHONPATH or anything else.
_NAME = re.compile(r"(?:FANOUT|AWS)_[A-Z0-9_]+")
_PLAIN = re.compile(r"[^\s'\"\\$`#]*")


def read_env_file(path: str) -> dict[str, str]:
    """The variables in ``path``; a line that is not ``NAME=value`` is a one-line error."""
    try:
        with open(path, encoding="utf-8") as source:
            text = source.read()
    except OSError as error:
        raise CommandError(
            f"--env-file {path}: {error.strerror}: `fanout serve --env-file {path}` writes it"
        ) from None
    variables: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, equals, value = line.removeprefix("export ").partition("=")
        name, value = name.strip(), value.strip()
        if not equals or not _NAME.fullmatch(name):
            raise CommandError(
                f"--env-file {path}, line {number}: expected FANOUT_...=value or AWS_...=value"
            )
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        variables[name] = value
    return variables


def write_env_file(path: str, variables: Mapping[str, str]) -> None:
    """Write ``variables`` to ``path``, readable by this user only (it may hold keys)."""
    for name, value in variables.items():
        if not _NAME.fullmatch(name) or not _PLAIN.fullmatch(value):
            raise ValueError(f"{name}={value!r} cannot be written as a plain NAME=value line")
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # an existing file keeps its mode through O_CREAT
    with os.fdopen(descriptor, "w", encoding="utf-8") as target:
        target.write("".join(f"{name}={value}\n" for name, value in variables.items()))
