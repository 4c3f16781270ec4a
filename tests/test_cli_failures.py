"""Every failure of `fanout` is one line on stderr and exit code 2; `--version`; `--help`."""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import re
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import fanout_core
from fanout_core.cli import build_parser

AWS_DYNAMODB = "https://dynamodb.us-east-1.amazonaws.com"
TABLE_COMMANDS = [
    ["publish", "--room", "lobby", "--data", '{"a": 1}'],
    ["members", "lobby"],
    ["table", "create"],
    ["table", "describe"],
]


def bare_env(**extra: str) -> dict[str, str]:
    """A shell with no AWS or fanout settings, and nowhere else boto could find credentials
    (no profile files, no instance metadata: nothing leaves the machine)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FANOUT_"))}
    env.update(
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
    )
    env.update(extra)
    return env


def fanout(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fanout_core.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The failure's one line, after checking it is one line, exit code 2 and no traceback."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("fanout")
    return lines[0]


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port on 127.0.0.1 that is bound but not listening: a connection is refused."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


@pytest.mark.parametrize("command", TABLE_COMMANDS, ids=" ".join)
def test_without_the_export_line_each_table_command_says_so_in_one_line(
    command: list[str],
) -> None:
    line = one_line(fanout(*command, env=bare_env()))
    assert "FANOUT_TABLE is not set" in line
    assert "AWS_ENDPOINT_URL_DYNAMODB" in line
    assert "`export` line `fanout serve` printed" in line
    assert f"table fanout on AWS ({AWS_DYNAMODB})" in line  # where it would have gone


def test_debug_adds_the_traceback_to_the_line() -> None:
    result = fanout("members", "lobby", "--debug", env=bare_env())
    assert result.returncode == 2
    assert "Traceback" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("fanout: FANOUT_TABLE is not set")


def test_an_unreachable_endpoint_is_named_with_its_variable_and_the_table(
    refused_port: int,
) -> None:
    url = f"http://127.0.0.1:{refused_port}"
    env = bare_env(FANOUT_TABLE="orders", AWS_ENDPOINT_URL_DYNAMODB=url)
    for command in (TABLE_COMMANDS[0], TABLE_COMMANDS[2]):  # through PynamoDB, through boto3
        line = one_line(fanout(*command, env=env))
        assert f"cannot reach {url} (AWS_ENDPOINT_URL_DYNAMODB) for table orders" in line
        assert "`fanout serve` running?" in line


def test_serve_names_a_dynamodb_it_cannot_reach_and_the_way_back(refused_port: int) -> None:
    url = f"http://127.0.0.1:{refused_port}"
    ports = ["--port", "0", "--management-port", "0"]
    line = one_line(fanout("serve", *ports, "--dynamodb-endpoint", url, env=bare_env()))
    assert line == (
        f"fanout: cannot reach {url} (--dynamodb-endpoint) for table fanout: start it, or "
        "leave out --dynamodb-endpoint to use fanout serve's own"
    )
    # A shell where an earlier `export` line was pasted: the variable is named, and undone.
    line = one_line(fanout("serve", *ports, env=bare_env(AWS_ENDPOINT_URL_DYNAMODB=url)))
    assert "(AWS_ENDPOINT_URL_DYNAMODB)" in line
    assert "unset AWS_ENDPOINT_URL_DYNAMODB" in line


def test_no_credentials_for_aws_names_the_endpoint_and_the_table() -> None:
    # Credentials are looked for before anything is sent: this fails on this machine.
    line = one_line(fanout(*TABLE_COMMANDS[0], env=bare_env(FANOUT_TABLE="orders")))
    assert line.startswith(f"fanout: no AWS credentials for table orders at {AWS_DYNAMODB}")
    assert "AWS_ENDPOINT_URL_DYNAMODB is not set" in line
    assert "AWS_PROFILE" in line


def test_a_table_that_does_not_exist_is_named(moto_server_url: str) -> None:
    table = f"missing-{uuid.uuid4().hex[:8]}"
    env = bare_env(FANOUT_TABLE=table, AWS_ENDPOINT_URL=moto_server_url)
    for command in (TABLE_COMMANDS[0], TABLE_COMMANDS[3]):
        line = one_line(fanout(*command, env=env))
        assert f"no table {table} at {moto_server_url} (AWS_ENDPOINT_URL)" in line
        assert "fanout table create" in line


def test_usage_mistakes_are_one_line() -> None:
    for command in (
        ["publish", "--room", "lobby"],
        ["serve", "--port", "http"],
        ["demo", "--send", "-1"],
    ):
        line = one_line(fanout(*command, env=bare_env()))
        assert "--help" in line


def test_an_env_file_is_read_for_the_command_alone(tmp_path: Path, refused_port: int) -> None:
    url = f"http://127.0.0.1:{refused_port}"
    env_file = tmp_path / "local.env"
    env_file.write_text(
        f"# a comment\nFANOUT_TABLE=from-file\nexport AWS_ENDPOINT_URL_DYNAMODB={url}\n"
    )
    line = one_line(fanout("members", "lobby", "--env-file", str(env_file), env=bare_env()))
    assert f"cannot reach {url} (AWS_ENDPOINT_URL_DYNAMODB) for table from-file" in line
    env_file.write_text("PYTHONPATH=/tmp\n")
    line = one_line(fanout("members", "lobby", "--env-file", str(env_file), env=bare_env()))
    assert f"--env-file {env_file}, line 1" in line
    missing = tmp_path / "missing.env"
    line = one_line(fanout("members", "lobby", "--env-file", str(missing), env=bare_env()))
    assert "No such file" in line
    assert f"fanout serve --env-file {missing}" in line


def test_version_is_the_package_metadata() -> None:
    installed = importlib.metadata.version("fanout-core")
    assert fanout_core.__version__ == installed
    result = fanout("--version", env=bare_env())
    assert result.returncode == 0
    assert result.stdout.strip() == f"fanout {installed}"


def subcommands(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from subcommands(child)


def test_help_shows_every_default_and_describes_every_argument() -> None:
    checked = 0
    for parser in subcommands(build_parser()):
        text = " ".join(parser.format_help().split())
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help, f"{parser.prog} {action.dest}: no description"
            default = action.default
            if default is None or default is argparse.SUPPRESS or isinstance(default, bool):
                continue
            checked += 1
            shown = re.search(rf"default:? {re.escape(str(default))}(?![\w.])", text)
            assert shown, f"{parser.prog} {action.option_strings}: default {default}"
    assert checked >= 15  # it looked at the options that have defaults


def test_serve_listens_on_the_same_ports_every_run() -> None:
    serve = next(p for p in subcommands(build_parser()) if p.prog == "fanout serve")
    defaults = {
        name: serve.get_default(name) for name in ("port", "management_port", "dynamodb_port")
    }
    assert defaults == {"port": 8765, "management_port": 8766, "dynamodb_port": 8767}
