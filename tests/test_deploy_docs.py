"""docs/deploy.md's ways of adding fanout-core to a project say what the code needs.

The Serverless Framework example wires every handler to its route with the IAM the handlers
need; the SAM layer example transforms; the per-handler IAM table is
fanout_core.deploy.permissions. (tests/test_package.py imports every handler these name from
the Lambda artifact; tests/test_cdk.py runs the CDK example.)
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import boto3
import yaml  # type: ignore[import-untyped,unused-ignore]
from samtranslator.parser.parser import Parser  # type: ignore[import-untyped,unused-ignore]
from samtranslator.translator.translator import (  # type: ignore[import-untyped,unused-ignore]
    Translator,
)

from fanout_core import handlers, subprotocol
from fanout_core.deploy import permissions
from fanout_core.signin import SignInConfig
from tests.test_template import REGION, _CfnLoader, _source, statement_actions

DEPLOY = Path(__file__).resolve().parent.parent / "docs" / "deploy.md"
PREFIX = f"{permissions.HANDLER_MODULE}."


def code_block(language: str, first_line: str) -> str:
    """The fenced ``language`` block of docs/deploy.md whose first line starts so."""
    for block in re.findall(rf"^```{language}\n(.*?)^```", DEPLOY.read_text(), re.M | re.S):
        if block.startswith(first_line):
            return str(block)
    raise AssertionError(f"docs/deploy.md has no {language} block starting {first_line!r}")


def serverless() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(code_block("yaml", "# serverless.yml"))
    return loaded


TABLE_ARN = {"Fn::GetAtt": ["Table", "Arn"]}
SERVERLESS_RESOURCES = {
    "table": TABLE_ARN,
    "index": {"Fn::Join": ["", [TABLE_ARN, "/index/audience"]]},
    "queue": {"Fn::GetAtt": ["Queue", "Arn"]},
    "connections": {
        "Fn::Join": [
            "",
            [
                "arn:",
                {"Ref": "AWS::Partition"},
                ":execute-api:",
                {"Ref": "AWS::Region"},
                ":",
                {"Ref": "AWS::AccountId"},
                ":",
                {"Ref": "WebsocketsApi"},
                "/${sls:stage}/POST/@connections/*",
            ],
        ]
    },
}


def test_the_serverless_example_wires_every_handler_to_its_route() -> None:
    config = serverless()
    functions = config["functions"]
    named = {f["handler"].removeprefix(PREFIX) for f in functions.values()}
    assert all(f["handler"].startswith(PREFIX) for f in functions.values())
    assert named == set(permissions.BASE)
    for name in named:
        assert callable(getattr(handlers, name)), name
    assert config["provider"]["websocketsApiRouteSelectionExpression"] == (
        permissions.ROUTE_SELECTION_EXPRESSION
    )
    routes = {}
    for function in functions.values():
        assert function["layers"] == [{"Ref": "FanoutLambdaLayer"}]
        for event in function.get("events", []):  # the authorizer is called, not routed to
            if "websocket" in event:
                socket = event["websocket"]
                routes[socket["route"]] = function["handler"].removeprefix(PREFIX)
                answers = socket.get("routeResponseSelectionExpression")
                one_way = socket["route"] in permissions.ONE_WAY_ROUTES
                assert answers == (None if one_way else "$default"), socket
    assert routes == dict(permissions.ROUTES)
    by_handler = {f["handler"].removeprefix(PREFIX): f for f in functions.values()}
    [sqs] = [e["sqs"] for e in by_handler[permissions.WORKER]["events"]]
    assert sqs["functionResponseType"] == "ReportBatchItemFailures"
    assert sqs["arn"] == SERVERLESS_RESOURCES["queue"]
    assert by_handler[permissions.SWEEP]["events"] == [{"schedule": "rate(1 hour)"}]
    # Sign-in: the authorizer guards $connect alone, by the subprotocol header.
    guarded = [
        (e["websocket"]["route"], e["websocket"]["authorizer"])
        for f in functions.values()
        for e in f.get("events", [])
        if "authorizer" in e.get("websocket", {})
    ]
    [(route, authorizer)] = guarded
    assert route == "$connect"
    assert by_handler[permissions.AUTHORIZER] is functions[authorizer["name"]]
    assert authorizer["identitySource"] == [f"route.request.header.{subprotocol.HEADER}"]
    env = by_handler[permissions.AUTHORIZER]["environment"]
    assert SignInConfig.from_env(env).key_set_url.startswith("https://cognito-idp.")


def test_the_serverless_role_holds_every_handlers_statements() -> None:
    """One role for every function: the union of their grants, with every setting on."""
    statements = serverless()["provider"]["iam"]["role"]["statements"]
    granted = statement_actions(statements, "serverless.yml", SERVERLESS_RESOURCES)
    every = permissions.grants(
        presence_events=True,
        rate_limit=True,
        history=True,
        user_rate_limit=True,
        max_connections=True,
    )
    assert granted == permissions.merged(*every.values())
    variables = serverless()["provider"]["environment"]
    assert variables["FANOUT_TABLE"] == {"Ref": "Table"}
    assert variables["FANOUT_QUEUE_URL"] == {"Ref": "Queue"}


def test_a_union_leaves_out_a_pattern_the_whole_resource_covers() -> None:
    counters = frozenset({permissions.COUNTERS})
    assert permissions.merged({"dynamodb:UpdateItem": counters}) == {
        "dynamodb:UpdateItem": counters
    }
    union = permissions.merged(
        {"dynamodb:UpdateItem": counters, "dynamodb:GetItem": counters},
        {"dynamodb:UpdateItem": permissions.TABLE},
    )
    assert union == {"dynamodb:UpdateItem": permissions.TABLE, "dynamodb:GetItem": counters}


def test_the_sam_layer_example_transforms() -> None:
    fragment = yaml.load(code_block("yaml", "  FanoutLayer:"), Loader=_CfnLoader)
    layer = fragment["FanoutLayer"]["Properties"]
    assert layer["ContentUri"] == "build/lambda/layer.zip"
    # sam package uploads both; the transform takes S3 locations only.
    layer["ContentUri"] = "s3://artifacts/layer.zip"
    function = fragment["JoinRoomFunction"]["Properties"]
    function["CodeUri"] = "s3://artifacts/src.zip"
    template = {
        "Transform": "AWS::Serverless-2016-10-31",
        "Resources": {"Table": copy.deepcopy(_source()["Resources"]["Table"]), **fragment},
    }
    translator = Translator(
        managed_policy_map={},
        sam_parser=Parser(),
        boto_session=boto3.session.Session(region_name=REGION),
    )
    result = translator.translate(template, parameter_values={})
    [name] = [n for n, r in result["Resources"].items() if r["Type"] == "AWS::Lambda::Function"]
    properties = result["Resources"][name]["Properties"]
    assert properties["Handler"] == f"{PREFIX}join_room"
    [layer_ref] = properties["Layers"]
    assert result["Resources"][layer_ref["Ref"]]["Type"] == "AWS::Lambda::LayerVersion"
    role = result["Resources"][properties["Role"]["Fn::GetAtt"][0]]["Properties"]
    statements = role["Policies"][0]["PolicyDocument"]["Statement"]
    resources = {"table": {"Fn::GetAtt": ["Table", "Arn"]}}
    assert statement_actions(statements, name, resources) == permissions.BASE["join_room"]


RESOURCE_WORDS = {
    "table": {"table"},
    "table and index": {"table", "index"},
    "the queue": {"queue"},
    "connections": {"connections"},
    "index": {"index"},
}


def test_the_iam_table_is_the_permissions() -> None:
    """Step 5's table: handler -> its actions and resources, as fanout_core.deploy says."""
    text = DEPLOY.read_text()
    start = text.index("| handler | actions |")
    rows = re.findall(r"^   \| `([a-z_]+)` \| (.*) \|$", text[start:], re.M)
    documented: dict[str, dict[str, frozenset[str]]] = {}
    for handler, cell in rows:
        grant: dict[str, frozenset[str]] = {}
        for clause in [] if cell == "none" else cell.split("; "):
            actions, _, where = clause.partition(" on ")
            for action in re.findall(r"`([a-z-]+:[A-Za-z]+)`", actions):
                grant[action] = grant.get(action, frozenset()) | RESOURCE_WORDS[where]
        documented[handler] = grant
    assert documented == permissions.BASE
