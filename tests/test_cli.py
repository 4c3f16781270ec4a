"""`fanout table create` and `fanout table describe`, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest


def run_fanout(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fanout_core.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(extra)
    return env


def test_table_create_twice_on_dynalite_without_credentials(dynalite_url: str) -> None:
    table = f"t1-{uuid.uuid4().hex[:8]}"
    env = clean_env(FANOUT_TABLE=table, AWS_ENDPOINT_URL_DYNAMODB=dynalite_url)
    first = run_fanout("table", "create", env=env)
    assert first.returncode == 0, first.stderr
    assert "created" in first.stdout
    assert "TTL on expires_at: off" in first.stdout
    second = run_fanout("table", "create", env=env)
    assert second.returncode == 0, second.stderr
    assert "already exists" in second.stdout
    described = run_fanout("table", "describe", env=env)
    assert described.returncode == 0, described.stderr
    shape = json.loads(described.stdout)
    assert shape["table"] == table
    assert shape["indexes"][0]["name"] == "audience"


def test_table_create_on_moto_server_enables_ttl(moto_server_url: str) -> None:
    env = clean_env(FANOUT_TABLE=f"t-{uuid.uuid4().hex[:8]}", AWS_ENDPOINT_URL=moto_server_url)
    created = run_fanout("table", "create", env=env)
    assert created.returncode == 0, created.stderr
    assert "TTL on expires_at: ENABLED" in created.stdout


def test_bad_config_is_a_clear_error() -> None:
    result = run_fanout("table", "create", env=clean_env(FANOUT_TTL_SECONDS="soon"))
    assert result.returncode == 2
    assert "FANOUT_TTL_SECONDS" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_explains_itself() -> None:
    result = run_fanout("--help", env=clean_env())
    assert result.returncode == 0
    assert "table" in result.stdout
    result = run_fanout("table", "create", "--help", env=clean_env())
    assert "idempotent" in result.stdout.lower() or "already exists" in result.stdout


@pytest.mark.server  # `fanout demo` runs a WebSocket API, a Management API and moto
def test_demo_under_a_policy_shows_a_denied_join() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "fanout_core.cli", "demo", "--policy", "owner_rooms"],
        env={**os.environ, "COLUMNS": "200"},  # the answer on one line, not wrapped
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    denied = "join is not allowed for room 'backstage': it is not one of this connection's rooms"
    assert f"403 forbidden: {denied}" in done.stdout
    assert "step 8 / 8" in done.stdout


def test_bad_access_options_fail_before_anything_starts() -> None:
    for args in (["serve", "--policy", "nope"], ["serve", "--rate-limit", "10"]):
        done = subprocess.run(
            [sys.executable, "-m", "fanout_core.cli", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2
        assert "FANOUT_" in done.stderr
