"""The `local` extra brings what `fanout serve` and `fanout demo` run, and no more."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# What moto's `server` extra would bring for services the local server never runs.
NOT_FOR_THE_DEMO = {"cfn-lint", "sympy", "networkx", "aws-sam-translator", "graphql-core"}


def closure(name: str, extras: set[str]) -> set[str]:
    """Every distribution ``name[extras]`` needs, read from the installed metadata."""
    seen: set[str] = set()
    todo = [(name, frozenset(extras))]
    while todo:
        current, wanted = todo.pop()
        key = canonicalize_name(current)
        if key in seen and not wanted:
            continue
        seen.add(key)
        for line in importlib.metadata.requires(current) or []:
            requirement = Requirement(line)
            marker = requirement.marker
            if marker is not None and not any(
                marker.evaluate({"extra": extra}) for extra in (wanted or {""})
            ):
                continue
            todo.append((requirement.name, frozenset(requirement.extras)))
    return seen


def test_the_local_extra_leaves_out_what_the_demo_never_runs() -> None:
    needed = closure("fanout-core", {"local"})
    assert {"moto", "flask", "flask-cors", "websockets", "rich", "pynamodb"} <= needed
    assert needed & NOT_FOR_THE_DEMO == set()
    # The dev tools still have all of it (the template tests run cfn-lint).
    assert {"cfn-lint", "aws-sam-translator"} <= closure("fanout-core", {"dev"})


# The modules that only moto's `server` extra installs.
SERVER_EXTRA_ONLY = ("cfnlint", "sympy", "networkx", "graphql", "aws_xray_sdk", "jsonpath_ng")

MOTO_SERVER_AT_WORK = f"""
import sys
import boto3
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
url = "http://%s:%d" % server.get_host_and_port()
keys = dict(region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s")
dynamodb = boto3.client("dynamodb", endpoint_url=url, **keys)
dynamodb.create_table(
    TableName="t",
    KeySchema=[{{"AttributeName": "pk", "KeyType": "HASH"}}],
    AttributeDefinitions=[{{"AttributeName": "pk", "AttributeType": "S"}}],
    BillingMode="PAY_PER_REQUEST",
)
dynamodb.update_time_to_live(
    TableName="t", TimeToLiveSpecification={{"Enabled": True, "AttributeName": "x"}}
)
sqs = boto3.client("sqs", endpoint_url=url, **keys)
sqs.send_message(QueueUrl=sqs.create_queue(QueueName="q")["QueueUrl"], MessageBody="m")
server.stop()
print(sorted(name for name in {SERVER_EXTRA_ONLY!r} if name in sys.modules))
"""


@pytest.mark.server
def test_moto_server_serves_dynamodb_and_sqs_without_its_server_extra() -> None:
    """The server and the two services the local extra keeps import nothing it left out."""
    done = subprocess.run(
        [sys.executable, "-c", MOTO_SERVER_AT_WORK],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
