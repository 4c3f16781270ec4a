"""The local servers themselves: a dynalite survives a client that hangs up mid-request."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import boto3
import pytest

from fanout_core.local import backends

# Each test starts a dynalite of its own, not through a fixture the automatic marking sees.
pytestmark = pytest.mark.server


def abort_mid_request(url: str) -> None:
    """Send half a DynamoDB request, then reset the connection (as a killed process does)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: dynamodb\r\n"
            b"Content-Type: application/x-amz-json-1.0\r\n"
            b"X-Amz-Target: DynamoDB_20120810.ListTables\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )
        # Linger 0: close() sends RST, so the server sees ECONNRESET mid-body.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def test_dynalite_survives_a_client_aborting_mid_request() -> None:
    with backends.dynalite() as url:
        for _ in range(3):
            abort_mid_request(url)
        client = boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1")
        assert client.list_tables()["TableNames"] == []
        backends.check_alive(url)


def test_a_dead_dynalite_is_reported_with_its_exit_code() -> None:
    with backends.dynalite() as url:
        process, _ = backends._DYNALITES[url]
        process.kill()
        process.wait(timeout=5)
        with pytest.raises(RuntimeError, match=r"dynalite at .* exited with code"):
            backends.check_alive(url)


def test_a_missing_dynalite_names_the_command_that_installs_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(backends, "_CHECKOUT", tmp_path)
    with pytest.raises(RuntimeError, match=r"dynalite is not installed.*`make test`.*`npm ci`"):
        backends.node_modules()


def test_dynalite_starts_from_any_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The launcher finds the checkout's node_modules when the cwd has none."""
    monkeypatch.chdir(tmp_path)
    with backends.dynalite() as url:
        client = boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1")
        assert client.list_tables()["TableNames"] == []
