"""template.yaml: linted, transformed offline, deployed into moto, compared with the library.

Nothing here needs an AWS account. aws-sam-translator runs the SAM transform in-process
(a boto3 Session with a region and no client stands in for the account), and the result is
created as a stack in moto's CloudFormation, less the resource types moto cannot create,
each named in ``DROPPED_FROM_MOTO``.
"""

from __future__ import annotations

import copy
import functools
import importlib
import inspect
import io
import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import moto
import pytest
import yaml  # type: ignore[import-untyped,unused-ignore]
from cfnlint.api import lint_file  # type: ignore[import-untyped,unused-ignore]
from moto.cloudformation.parsing import get_model_map
from samtranslator.parser.parser import Parser  # type: ignore[import-untyped,unused-ignore]
from samtranslator.translator.translator import (  # type: ignore[import-untyped,unused-ignore]
    Translator,
)

from fanout_core import config as defaults
from fanout_core import cost, keys, subprotocol
from fanout_core import handlers as library_handlers
from fanout_core.config import FanoutConfig
from fanout_core.deploy import package, permissions
from fanout_core.errors import ConfigError
from fanout_core.strategy import BUILTIN_STRATEGIES
from fanout_core.table import create_table, describe_table

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
REGION = "us-east-1"
HANDLER_PREFIX = "fanout_core.handlers."
# What `sam package` would upload; moto's Lambda reads the code from its S3.
ARTIFACT_BUCKET = "fanout-artifacts"
ARTIFACT_KEY = "fanout.zip"
AUTHORIZER_CODE = str(package.DEFAULT_OUT / package.AUTHORIZER_DIR)

# Route key -> handler function in fanout_core.handlers, as every deployment wires them.
ROUTES = permissions.ROUTES
# Routes whose answer does not go back to the client (no $default route response).
ONE_WAY_ROUTES = permissions.ONE_WAY_ROUTES

# Every function the template can make: the routes', and the optional publishers.
EXPECTED_ACTIONS = permissions.grants(publish=True)
PUBLISHER_ACTIONS = permissions.PUBLISHER


# The only resources a policy may name, as the template writes them.
POLICY_RESOURCES: dict[str, Any] = {
    "table": {"Fn::GetAtt": ["Table", "Arn"]},
    "index": {"Fn::Sub": "${Table.Arn}/index/audience"},
    "queue": {"Fn::GetAtt": ["Queue", "Arn"]},
    "connections": {
        "Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:"
        "${WebSocketApi}/${StageName}/POST/@connections/*"
    },
    "disconnections": {
        "Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:"
        "${WebSocketApi}/${StageName}/DELETE/@connections/*"
    },
}
BASIC_EXECUTION_ROLE = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"

# Resource types moto's CloudFormation cannot create (moto 5.1, which pyproject.toml pins,
# has no CloudFormation model for them), dropped from the moto deployment only. Lint, the
# transform and the wiring tests still read them from the template.
DROPPED_FROM_MOTO = {
    "AWS::ApiGatewayV2::Api": "no ApiGatewayV2 models in moto's CloudFormation",
    "AWS::ApiGatewayV2::Stage": "no ApiGatewayV2 models in moto's CloudFormation",
    "AWS::ApiGatewayV2::Route": "no ApiGatewayV2 models in moto's CloudFormation",
    "AWS::ApiGatewayV2::RouteResponse": "no ApiGatewayV2 models in moto's CloudFormation",
    "AWS::ApiGatewayV2::Integration": "no ApiGatewayV2 models in moto's CloudFormation",
    "AWS::ApiGatewayV2::Authorizer": "no ApiGatewayV2 models in moto's CloudFormation",
    "AWS::Lambda::Url": "no Lambda function URL model in moto's CloudFormation",
    "AWS::CloudWatch::Alarm": "no CloudWatch alarm model in moto's CloudFormation",
    "AWS::CloudWatch::Dashboard": "no CloudWatch dashboard model in moto 5.1's CloudFormation",
}
# What a Ref to a dropped resource returns on AWS (the API id, the stage name), passed to
# the moto stack as parameters of the same names.
STAND_INS = {
    "WebSocketApi": "a1b2c3d4e5",
    "Stage": "prod",
    "ConnectAuthorizer": "abc123",
    "Dashboard": "fanout-fanout",  # its DashboardName: ${AWS::StackName}-fanout
}
# The settings each condition stands for, with the template's defaults.
DEFAULT_CONDITIONS = {
    "PresenceEventsOn": False,
    "RateLimitOn": False,
    "HistoryOn": False,
    "UserRateLimitOn": False,
    "MaxConnectionsOn": False,
    "AuthOn": False,
    "CustomAuth": False,
    "TokenInQuery": False,
    "HttpPublishOn": False,
    "EventsOn": False,
    "AlarmTopicOn": False,
}

_SUB_REFERENCE = re.compile(r"\$\{(?!!)([^}.]+)(?:\.([^}]+))?\}")


# -- loading and transforming ---------------------------------------------------------------


class _CfnLoader(yaml.SafeLoader):  # type: ignore[misc,unused-ignore]
    """SafeLoader that reads CloudFormation's short forms (!Ref, !Sub, !GetAtt ...)."""


def _intrinsic(loader: Any, suffix: str, node: Any) -> dict[str, Any]:
    tag = node.tag[1:]
    name = tag if tag in ("Ref", "Condition") else f"Fn::{tag}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if tag == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


@functools.cache
def _source() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)
    return loaded


@functools.cache
def _transformed() -> dict[str, Any]:
    template = copy.deepcopy(_source())
    # `sam build` + `sam package` replace the local CodeUri with the uploaded artifact;
    # the transform accepts nothing else.
    template["Globals"]["Function"]["CodeUri"] = f"s3://{ARTIFACT_BUCKET}/{ARTIFACT_KEY}"
    for name, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            properties = resource.get("Properties", {})
            if name == "AuthorizerFunction":  # its own artifact, with the jwt extra
                assert properties["CodeUri"] == AUTHORIZER_CODE
                properties["CodeUri"] = f"s3://{ARTIFACT_BUCKET}/authorizer.zip"
            assert "CodeUri" not in properties or name == "AuthorizerFunction", (
                "CodeUri belongs in Globals"
            )
    # A Session with a region answers the pseudo parameters; it makes no call. The empty
    # managed-policy map: the template names no managed policy by name.
    translator = Translator(
        managed_policy_map={},
        sam_parser=Parser(),
        boto_session=boto3.session.Session(region_name=REGION),
    )
    result: dict[str, Any] = translator.translate(template, parameter_values={})
    return result


@pytest.fixture
def source() -> dict[str, Any]:
    """template.yaml as written."""
    return copy.deepcopy(_source())


@pytest.fixture
def transformed() -> dict[str, Any]:
    """template.yaml after the SAM transform: plain CloudFormation."""
    return copy.deepcopy(_transformed())


def of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    """The resources of one type, by logical id."""
    return {
        name: resource
        for name, resource in template["Resources"].items()
        if resource["Type"] == resource_type
    }


def references(value: Any) -> set[tuple[str, str | None]]:
    """Every (logical id, attribute or None) that ``value`` refers to."""
    found: set[tuple[str, str | None]] = set()
    if isinstance(value, dict):
        if set(value) == {"Ref"}:
            found.add((value["Ref"], None))
        elif set(value) == {"Fn::GetAtt"}:
            found.add((value["Fn::GetAtt"][0], value["Fn::GetAtt"][1]))
        elif set(value) == {"Fn::Sub"}:
            sub = value["Fn::Sub"]
            text, variables = (sub, {}) if isinstance(sub, str) else sub
            for name, attribute in _SUB_REFERENCE.findall(text):
                if name not in variables and "::" not in name:
                    found.add((name, attribute or None))
            found |= references(variables)
        else:
            for item in value.values():
                found |= references(item)
    elif isinstance(value, list):
        for item in value:
            found |= references(item)
    return found


def arn_of(value: Any) -> str:
    """The logical id whose Arn ``value`` refers to, and nothing else."""
    found = references(value)
    [(name, attribute)] = found
    assert attribute == "Arn", found
    return name


def function_handlers(template: dict[str, Any]) -> dict[str, str]:
    """Lambda logical id -> handler name in fanout_core.handlers."""
    handlers: dict[str, str] = {}
    for name, function in of_type(template, "AWS::Lambda::Function").items():
        handler = function["Properties"]["Handler"]
        assert handler.startswith(HANDLER_PREFIX), f"{name}: {handler} is not in fanout_core"
        handlers[name] = handler.removeprefix(HANDLER_PREFIX)
    return handlers


# -- lint -------------------------------------------------------------------------------------


def test_cfn_lint_is_clean() -> None:
    matches = lint_file(TEMPLATE)
    assert [str(match) for match in matches] == []


def test_cfn_lint_reports_a_broken_template(tmp_path: Path) -> None:
    broken = tmp_path / "template.yaml"
    broken.write_text(TEMPLATE.read_text().replace("RouteKey: ping", "RouteKeyy: ping"))
    rules = {match.rule.id for match in lint_file(broken)}
    assert "E3002" in rules  # unexpected property


# -- the API: routes, integrations, permissions, stage ----------------------------------------


def test_the_deployment_routes_are_the_librarys() -> None:
    """fanout_core.deploy names the routes and handlers without importing the handlers."""
    library = {route: handler.__name__ for route, handler in library_handlers.ROUTES.items()}
    assert dict(ROUTES) == library
    assert set(ROUTES) == {"$connect", "$disconnect", "$default", *library_handlers.CLIENT_ACTIONS}
    assert set(permissions.BASE) == {
        *ROUTES.values(),
        permissions.WORKER,
        permissions.SWEEP,
        permissions.AUTHORIZER,
        permissions.GAUGE,
    }
    assert library_handlers.__name__ == permissions.HANDLER_MODULE
    assert callable(getattr(library_handlers, permissions.WEBSOCKET))


def test_every_route_reaches_its_handler(transformed: dict[str, Any]) -> None:

    (api_id, api), *others = of_type(transformed, "AWS::ApiGatewayV2::Api").items()
    assert others == []
    assert api["Properties"]["ProtocolType"] == "WEBSOCKET"
    assert api["Properties"]["RouteSelectionExpression"] == "$request.body.action"

    functions = function_handlers(transformed)
    integrations = of_type(transformed, "AWS::ApiGatewayV2::Integration")
    permissions = of_type(transformed, "AWS::Lambda::Permission")
    responses = of_type(transformed, "AWS::ApiGatewayV2::RouteResponse")
    routes = of_type(transformed, "AWS::ApiGatewayV2::Route")
    assert sorted(route["Properties"]["RouteKey"] for route in routes.values()) == sorted(ROUTES)

    for route_id, route in routes.items():
        props = route["Properties"]
        key = props["RouteKey"]
        assert props["ApiId"] == {"Ref": api_id}
        target = re.fullmatch(r"integrations/\$\{(\w+)\}", props["Target"]["Fn::Sub"])
        assert target, f"{key}: target {props['Target']}"
        integration = integrations[target[1]]["Properties"]
        assert integration["IntegrationType"] == "AWS_PROXY"
        function_id = arn_of(integration["IntegrationUri"])
        assert functions[function_id] == ROUTES[key], f"{key} reaches {functions[function_id]}"

        allowed = [
            p["Properties"]
            for p in permissions.values()
            if p["Properties"]["FunctionName"] == {"Ref": function_id}
            and p["Properties"]["Principal"] == "apigateway.amazonaws.com"
        ]
        assert [p["Action"] for p in allowed] == ["lambda:InvokeFunction"], key
        assert allowed[0]["SourceArn"] == {
            "Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:"
            f"${{{api_id}}}/${{StageName}}/{key}"
        }

        answers = [
            r["Properties"]
            for r in responses.values()
            if r["Properties"]["RouteId"] == {"Ref": route_id}
        ]
        if key in ONE_WAY_ROUTES:
            assert answers == [], key
            assert "RouteResponseSelectionExpression" not in props, key
        else:
            assert props["RouteResponseSelectionExpression"] == "$default", key
            assert [a["RouteResponseKey"] for a in answers] == ["$default"], key

    [stage] = of_type(transformed, "AWS::ApiGatewayV2::Stage").values()
    assert stage["Properties"]["ApiId"] == {"Ref": api_id}
    assert stage["Properties"]["AutoDeploy"] is True
    assert "DeploymentId" not in stage["Properties"]
    assert sorted(stage["DependsOn"]) == sorted(routes)


def test_every_handler_imports(transformed: dict[str, Any]) -> None:
    functions = function_handlers(transformed)
    assert sorted(functions.values()) == sorted(EXPECTED_ACTIONS)
    for name, handler in functions.items():
        module = importlib.import_module(HANDLER_PREFIX.rstrip("."))
        function = getattr(module, handler, None)
        assert callable(function), f"{name}: fanout_core.handlers.{handler} is not a function"
        # Lambda calls handler(event, context); wrappers count, not what they wrap.
        inspect.signature(function, follow_wrapped=False).bind({}, None)


def test_parameters_match_the_library(source: dict[str, Any]) -> None:
    parameters = source["Parameters"]
    assert sorted(parameters["Strategy"]["AllowedValues"]) == sorted(BUILTIN_STRATEGIES)
    assert parameters["Strategy"]["Default"] == defaults.DEFAULT_STRATEGY
    assert parameters["Concurrency"]["Default"] == defaults.DEFAULT_CONCURRENCY
    assert parameters["Segments"]["Default"] == defaults.DEFAULT_SEGMENTS
    assert parameters["TtlSeconds"]["Default"] == defaults.DEFAULT_TTL_SECONDS
    assert parameters["Policy"]["Default"] == defaults.DEFAULT_POLICY
    assert parameters["RateLimit"]["Default"] == ""
    assert (
        parameters["UserRateLimit"]["AllowedPattern"] == parameters["RateLimit"]["AllowedPattern"]
    )
    rooms = parameters["MaxRoomsPerConnection"]
    assert (rooms["Default"], rooms["MinValue"], rooms["MaxValue"]) == (
        defaults.DEFAULT_MAX_ROOMS,
        1,
        1000,
    )
    cap = parameters["MaxConnectionsPerUser"]
    assert (cap["Default"], cap["MinValue"]) == (0, 0)  # 0: no cap, as the library reads it
    assert (
        defaults.FanoutConfig.from_env(
            {"FANOUT_MAX_CONNECTIONS_PER_USER": "0"}
        ).max_connections_per_user
        is None
    )
    assert parameters["PresenceEvents"]["AllowedValues"] == ["false", "true"]
    pattern = re.compile(parameters["RateLimit"]["AllowedPattern"])
    for value in ("", "10/1", "3/0.5"):
        assert pattern.fullmatch(value)
        if value:
            defaults.RateLimit.parse(value)  # what the template accepts, the library reads
    variables = source["Globals"]["Function"]["Environment"]["Variables"]
    assert variables == {
        "FANOUT_TABLE": {"Ref": "Table"},
        "FANOUT_STRATEGY": {"Ref": "Strategy"},
        "FANOUT_CONCURRENCY": {"Ref": "Concurrency"},
        "FANOUT_SEGMENTS": {"Ref": "Segments"},
        "FANOUT_TTL_SECONDS": {"Ref": "TtlSeconds"},
        "FANOUT_QUEUE_URL": {"Ref": "Queue"},
        "FANOUT_POLICY": {"Ref": "Policy"},
        "FANOUT_RATE_LIMIT": {"Ref": "RateLimit"},
        "FANOUT_USER_RATE_LIMIT": {"Ref": "UserRateLimit"},
        "FANOUT_MAX_ROOMS_PER_CONNECTION": {"Ref": "MaxRoomsPerConnection"},
        "FANOUT_MAX_CONNECTIONS_PER_USER": {"Ref": "MaxConnectionsPerUser"},
        "FANOUT_PRESENCE_EVENTS": {"Ref": "PresenceEvents"},
        "FANOUT_HISTORY_SECONDS": {"Ref": "HistorySeconds"},
        "FANOUT_HISTORY_MAX": {"Ref": "HistoryMax"},
        "FANOUT_DEDUP_SECONDS": {"Ref": "DedupSeconds"},
        "FANOUT_MAX_POSTS_PER_SECOND": {"Ref": "MaxPostsPerSecond"},
        "FANOUT_SERVICE": {"Ref": "AWS::StackName"},
        "FANOUT_METRICS_NAMESPACE": {"Ref": "MetricsNamespace"},
    }
    assert parameters["MetricsNamespace"]["Default"] == defaults.DEFAULT_METRICS_NAMESPACE
    assert parameters["HistorySeconds"]["Default"] == 0  # off, as FanoutConfig's default
    assert parameters["HistoryMax"]["Default"] == defaults.DEFAULT_HISTORY_MAX
    # A Number, as the other windows: 0 (the default) is the library's default window.
    dedup = parameters["DedupSeconds"]
    assert (dedup["Type"], dedup["Default"], dedup["MinValue"]) == ("Number", 0, 0)
    read = defaults.FanoutConfig.from_env({"FANOUT_DEDUP_SECONDS": str(dedup["Default"])})
    assert read.dedup_window == defaults.DEFAULT_DEDUP_SECONDS
    with_history = {"FANOUT_DEDUP_SECONDS": "0", "FANOUT_HISTORY_SECONDS": "600"}
    assert defaults.FanoutConfig.from_env(with_history).dedup_window == 600
    top = dedup["MaxValue"]
    assert defaults.FanoutConfig.from_env({"FANOUT_DEDUP_SECONDS": str(top)}).dedup_window == top
    with pytest.raises(ConfigError, match="FANOUT_DEDUP_SECONDS"):
        defaults.FanoutConfig.from_env({"FANOUT_DEDUP_SECONDS": str(top + 1)})


def test_the_worker_scales_within_a_cap_and_posts_within_a_rate(
    source: dict[str, Any], transformed: dict[str, Any]
) -> None:
    """WorkerMaxConcurrency caps the SQS mapping (AWS takes 2 to 1000); MaxPostsPerSecond is
    FANOUT_MAX_POSTS_PER_SECOND, 0 for no cap, in the range the library reads."""
    parameters = source["Parameters"]
    workers = parameters["WorkerMaxConcurrency"]
    assert (workers["Type"], workers["MinValue"], workers["MaxValue"]) == ("Number", 2, 1000)
    assert 2 <= workers["Default"] <= 1000
    [mapping] = of_type(transformed, "AWS::Lambda::EventSourceMapping").values()
    properties = mapping["Properties"]
    assert properties["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "WorkerMaxConcurrency"}}
    assert properties["FunctionName"] == {"Ref": "SqsWorkerFunction"}

    rate = parameters["MaxPostsPerSecond"]
    assert (rate["Type"], rate["Default"], rate["MinValue"]) == ("Number", 0, 0)
    assert "10,000" in rate["Description"]  # the account's rate it is there to stay under
    env = "FANOUT_MAX_POSTS_PER_SECOND"
    assert FanoutConfig.from_env({env: str(rate["Default"])}).max_posts_per_second is None
    top = rate["MaxValue"]
    assert FanoutConfig.from_env({env: str(top)}).max_posts_per_second == top
    with pytest.raises(ConfigError, match=env):
        FanoutConfig.from_env({env: str(top + 1)})


def test_the_cost_model_prices_the_functions_as_deployed(source: dict[str, Any]) -> None:
    workload = cost.Workload(connections=1, room_size=1, messages_per_day=1)
    assert source["Globals"]["Function"]["MemorySize"] == workload.lambda_memory_mb
    worker = source["Resources"]["SqsWorkerFunction"]["Properties"]
    assert worker.get("MemorySize", workload.lambda_memory_mb) == workload.lambda_memory_mb
    assert worker["Events"]["Batches"]["Properties"]["BatchSize"] == cost.LAMBDA_BATCH_SIZE


def test_sweep_runs_hourly_and_open_connections_every_five_minutes(
    transformed: dict[str, Any],
) -> None:
    functions = function_handlers(transformed)
    schedules = {}
    for rule in of_type(transformed, "AWS::Events::Rule").values():
        if "ScheduleExpression" not in rule["Properties"]:
            continue  # PublishEventsRule: an event pattern
        [target] = rule["Properties"]["Targets"]
        schedules[functions[arn_of(target["Arn"])]] = rule["Properties"]["ScheduleExpression"]
    assert schedules == {"sweep": "rate(1 hour)", permissions.GAUGE: "rate(5 minutes)"}


def test_the_optional_publishers_are_wired(transformed: dict[str, Any]) -> None:
    """HttpPublish: a Function URL with IAM auth; EventPattern: a rule invoking publish_events."""
    resources = transformed["Resources"]
    functions = function_handlers(transformed)
    assert functions["PublishHttpFunction"] == "publish_http"
    assert functions["PublishEventsFunction"] == "publish_events"
    [url] = of_type(transformed, "AWS::Lambda::Url").values()
    assert url["Properties"]["AuthType"] == "AWS_IAM"
    assert url["Properties"]["TargetFunctionArn"] == {"Ref": "PublishHttpFunction"}
    assert url["Condition"] == "HttpPublishOn"
    rule = resources["PublishEventsRule"]
    assert (rule["Condition"], rule["Properties"]["EventPattern"]) == (
        "EventsOn",
        {"Ref": "EventPattern"},
    )
    [target] = rule["Properties"]["Targets"]
    assert arn_of(target["Arn"]) == "PublishEventsFunction"
    permission = resources["PublishEventsPermission"]["Properties"]
    assert permission["Principal"] == "events.amazonaws.com"
    assert transformed["Outputs"]["PublishURL"]["Condition"] == "HttpPublishOn"
    for name in ("PublishHttpFunction", "PublishEventsFunction", "PublishEventsPermission"):
        assert resources[name]["Condition"] in ("HttpPublishOn", "EventsOn")


def test_the_functions_deploy_the_packaged_artifact(source: dict[str, Any]) -> None:
    """CodeUri is what `make package` builds (tests/test_package.py checks what is in it)."""
    code_uri = source["Globals"]["Function"]["CodeUri"]
    assert Path(code_uri) == package.DEFAULT_OUT / package.FUNCTION_DIR
    assert source["Globals"]["Function"]["Runtime"] == f"python{package.PYTHON_VERSION}"


# -- least privilege --------------------------------------------------------------------------


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _resource_name(value: Any, resources: dict[str, Any]) -> str:
    for name, written in resources.items():
        if value == written:
            return name
    raise ValueError(f"a policy names a resource outside this stack's table/queue/API: {value}")


def _managed_arn(value: Any) -> str:
    # SAM resolves the partition of the roles it makes; a role written here uses !Sub.
    if isinstance(value, dict) and set(value) == {"Fn::Sub"}:
        return str(value["Fn::Sub"]).replace("${AWS::Partition}", "aws")
    return str(value)


def resolve_conditions(value: Any, conditions: dict[str, bool]) -> Any:
    """``value`` with every Fn::If decided and every AWS::NoValue dropped."""
    if isinstance(value, dict):
        if set(value) == {"Fn::If"}:
            name, when_true, when_false = value["Fn::If"]
            # A condition a caller leaves out (AlarmTopicOn: alarms only) is off.
            chosen = when_true if conditions.get(name, False) else when_false
            return resolve_conditions(chosen, conditions)
        resolved = {k: resolve_conditions(v, conditions) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v != {"Ref": "AWS::NoValue"}}
    if isinstance(value, list):
        items = [resolve_conditions(v, conditions) for v in value]
        return [item for item in items if item != {"Ref": "AWS::NoValue"}]
    return value


def granted_actions(
    template: dict[str, Any],
    *,
    presence_events: bool = False,
    rate_limit: bool = False,
    history: bool = False,
    user_rate_limit: bool = False,
    max_connections: bool = False,
) -> dict[str, dict[str, frozenset[str]]]:
    """Handler -> action -> resource names, from each function's role, for the settings."""
    conditions = {
        **DEFAULT_CONDITIONS,
        "PresenceEventsOn": presence_events,
        "RateLimitOn": rate_limit,
        "HistoryOn": history,
        "UserRateLimitOn": user_rate_limit,
        "MaxConnectionsOn": max_connections,
    }
    template = resolve_conditions(template, conditions)
    roles = of_type(template, "AWS::IAM::Role")
    granted: dict[str, dict[str, frozenset[str]]] = {}
    for function_id, handler in function_handlers(template).items():
        role = roles[arn_of(template["Resources"][function_id]["Properties"]["Role"])]
        role = role["Properties"]
        for trust in role["AssumeRolePolicyDocument"]["Statement"]:
            assert trust["Effect"] == "Allow"
            assert _as_list(trust["Principal"]["Service"]) == ["lambda.amazonaws.com"]
            assert _as_list(trust["Action"]) == ["sts:AssumeRole"]
        managed = [_managed_arn(arn) for arn in role.get("ManagedPolicyArns", [])]
        if managed != [BASIC_EXECUTION_ROLE]:
            raise ValueError(f"{function_id}: managed policies {managed}, expected logs only")
        statements = [s for p in role.get("Policies", []) for s in p["PolicyDocument"]["Statement"]]
        # A statement on the whole table holds a narrower one beside it (as merged() says).
        granted[handler] = permissions.merged(statement_actions(statements, function_id))
    return granted


def statement_actions(
    statements: list[Any], where: str, resources: dict[str, Any] | None = None
) -> dict[str, frozenset[str]]:
    """Action -> resource names of Allow statements; anything else is refused.

    ``resources``: name -> how the template writes it (default: POLICY_RESOURCES).
    """
    written = POLICY_RESOURCES if resources is None else resources
    actions: dict[str, set[str]] = {}
    for statement in statements:
        if statement.get("Effect") != "Allow" or not set(statement) <= {
            "Sid",
            "Effect",
            "Action",
            "Resource",
            "Condition",
        }:
            raise ValueError(f"{where}: unexpected statement {statement}")
        names = {_resource_name(r, written) for r in _as_list(statement["Resource"])}
        if "Condition" in statement:  # only a narrowing to partitions: "table SEQ#*"
            [(test, [(key, prefixes)])] = [
                (t, list(c.items())) for t, c in statement["Condition"].items()
            ]
            if (test, key) != ("ForAllValues:StringLike", "dynamodb:LeadingKeys"):
                raise ValueError(f"{where}: unexpected condition {statement['Condition']}")
            names = {f"{name} {','.join(prefixes)}" for name in names}
        for action in _as_list(statement["Action"]):
            actions.setdefault(action, set()).update(names)
    return {action: frozenset(names) for action, names in actions.items()}


def test_each_function_may_do_exactly_what_its_handler_does(transformed: dict[str, Any]) -> None:
    assert granted_actions(transformed) == EXPECTED_ACTIONS


@pytest.mark.parametrize("presence_events", [False, True])
@pytest.mark.parametrize("rate_limit", [False, True])
@pytest.mark.parametrize("history", [False, True])
@pytest.mark.parametrize(
    ("user_rate_limit", "max_connections"), [(False, False), (True, False), (True, True)]
)
def test_presence_events_the_rate_limits_history_and_caps_grant_exactly_what_they_call(
    transformed: dict[str, Any],
    presence_events: bool,
    rate_limit: bool,
    history: bool,
    user_rate_limit: bool,
    max_connections: bool,
) -> None:
    settings = {
        "presence_events": presence_events,
        "rate_limit": rate_limit,
        "history": history,
        "user_rate_limit": user_rate_limit,
        "max_connections": max_connections,
    }
    assert granted_actions(transformed, **settings) == permissions.grants(**settings, publish=True)


def test_publisher_policy_allows_exactly_what_fanout_calls(transformed: dict[str, Any]) -> None:
    [(policy_id, policy)] = of_type(transformed, "AWS::IAM::ManagedPolicy").items()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement_actions(statements, policy_id) == PUBLISHER_ACTIONS
    assert PUBLISHER_ACTIONS["dynamodb:UpdateItem"] == {f"table {keys.COUNTER_PREFIX}*"}
    assert transformed["Outputs"]["PublisherPolicyArn"]["Value"] == {"Ref": policy_id}


def _role_statements(template: dict[str, Any], function_id: str) -> list[Any]:
    role_id = arn_of(template["Resources"][function_id]["Properties"]["Role"])
    statements: list[Any] = template["Resources"][role_id]["Properties"]["Policies"][0][
        "PolicyDocument"
    ]["Statement"]
    return statements


def test_least_privilege_check_catches_drift(transformed: dict[str, Any]) -> None:
    # One more action on the right resource.
    extra = copy.deepcopy(transformed)
    _role_statements(extra, "PingFunction").append(
        {"Effect": "Allow", "Action": "dynamodb:Scan", "Resource": POLICY_RESOURCES["table"]}
    )
    assert granted_actions(extra) != EXPECTED_ACTIONS
    # The right action on one more resource.
    wider = copy.deepcopy(transformed)
    _role_statements(wider, "SweepFunction").append(
        {"Effect": "Allow", "Action": "dynamodb:Scan", "Resource": POLICY_RESOURCES["index"]}
    )
    assert granted_actions(wider) != EXPECTED_ACTIONS
    # Any resource outside the stack.
    anywhere = copy.deepcopy(transformed)
    _role_statements(anywhere, "ConnectFunction")[0]["Resource"] = "*"
    with pytest.raises(ValueError, match="outside this stack"):
        granted_actions(anywhere)
    # SAM's own SQS policy (every queue in the account) instead of the worker's role.
    sam_role = copy.deepcopy(transformed)
    sam_role["Resources"]["SqsWorkerRole"]["Properties"]["ManagedPolicyArns"].append(
        "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole"
    )
    with pytest.raises(ValueError, match="managed policies"):
        granted_actions(sam_role)


# -- deployed into moto -----------------------------------------------------------------------


@dataclass(frozen=True)
class Stack:
    """The moto deployment: what was dropped, and the stack's resources and outputs."""

    dropped: dict[str, str]  # logical id -> type
    physical: dict[str, str]  # logical id -> physical id
    outputs: dict[str, str]


def _artifact() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("fanout_core/__init__.py", "")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    template = copy.deepcopy(_transformed())
    dropped = {
        name: resource["Type"]
        for name, resource in template["Resources"].items()
        if resource["Type"] in DROPPED_FROM_MOTO
    }
    for name in dropped:
        del template["Resources"][name]
    for name, output in list(template.get("Outputs", {}).items()):
        if not DEFAULT_CONDITIONS.get(output.get("Condition", ""), True):
            del template["Outputs"][name]  # off by default: nothing to stand in for
    used = references({"R": template["Resources"], "O": template.get("Outputs", {})})
    missing = {(name, attribute) for name, attribute in used if name in dropped}
    assert missing <= {(name, None) for name in STAND_INS}, f"no stand-in for {missing}"
    for name, value in STAND_INS.items():
        template["Parameters"][name] = {"Type": "String", "Default": value}

    with moto.mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=ARTIFACT_BUCKET)
        s3.put_object(Bucket=ARTIFACT_BUCKET, Key=ARTIFACT_KEY, Body=_artifact())
        cloudformation: Any = boto3.client("cloudformation", region_name=REGION)
        cloudformation.create_stack(
            StackName="fanout",
            TemplateBody=json.dumps(template),
            Capabilities=["CAPABILITY_IAM"],
        )
        [described] = cloudformation.describe_stacks(StackName="fanout")["Stacks"]
        assert described["StackStatus"] == "CREATE_COMPLETE", described.get("StackStatusReason")
        summaries = cloudformation.list_stack_resources(StackName="fanout")[
            "StackResourceSummaries"
        ]
        # Resources whose condition is off with the defaults (sign-in) are not created; moto
        # lists each as a blank summary.
        off = {
            name
            for name, resource in template["Resources"].items()
            if "Condition" in resource and not DEFAULT_CONDITIONS[resource["Condition"]]
        }
        blank = [s for s in summaries if not s["LogicalResourceId"]]
        assert len(blank) == len(off)
        summaries = [s for s in summaries if s["LogicalResourceId"]]
        statuses = {s["LogicalResourceId"]: s["ResourceStatus"] for s in summaries}
        assert statuses == dict.fromkeys(set(template["Resources"]) - off, "CREATE_COMPLETE")
        yield Stack(
            dropped=dropped,
            physical={s["LogicalResourceId"]: s["PhysicalResourceId"] for s in summaries},
            outputs={o["OutputKey"]: o["OutputValue"] for o in described["Outputs"]},
        )


def test_moto_drops_exactly_the_listed_types(stack: Stack, transformed: dict[str, Any]) -> None:
    types = {resource["Type"] for resource in transformed["Resources"].values()}
    unsupported = {t for t in types if t not in get_model_map()}
    assert unsupported == set(DROPPED_FROM_MOTO)
    assert set(stack.dropped.values()) == set(DROPPED_FROM_MOTO)
    signing_in = {n for n, r in transformed["Resources"].items() if r.get("Condition") == "AuthOn"}
    assert signing_in == {
        "AuthorizerFunction",
        "AuthorizerFunctionRole",
        "AuthorizerPermission",
        "AuthorizerLogGroup",
        "AuthorizerThrottlesAlarm",
    } | {"ConnectAuthorizer"}
    optional = {
        name
        for name, resource in transformed["Resources"].items()
        if not DEFAULT_CONDITIONS.get(resource.get("Condition", ""), True)
    }
    expected = set(transformed["Resources"]) - set(stack.dropped) - signing_in - optional
    assert set(stack.physical) == expected


def _shape(described: dict[str, Any], raw: dict[str, Any]) -> dict[str, Any]:
    """The parts of a table that must not drift, order-insensitive where DynamoDB is."""
    return {
        "key_schema": described["key_schema"],
        "attributes": sorted(
            (a["AttributeName"], a["AttributeType"]) for a in raw["AttributeDefinitions"]
        ),
        "indexes": sorted(
            (
                index["name"],
                tuple(sorted(index["key_schema"].items())),
                index["projection"]["ProjectionType"],
                frozenset(index["projection"].get("NonKeyAttributes", [])),
            )
            for index in described["indexes"]
        ),
        "local_indexes": raw.get("LocalSecondaryIndexes", []),
        "billing_mode": described["billing_mode"],
    }


def test_deployed_table_is_the_table_the_library_creates(
    stack: Stack, transformed: dict[str, Any]
) -> None:
    client: Any = boto3.client("dynamodb", region_name=REGION)
    library = FanoutConfig(table="lib-shape")
    create_table(library)
    deployed = FanoutConfig(table=stack.physical["Table"])

    library_shape = _shape(
        describe_table(library), client.describe_table(TableName="lib-shape")["Table"]
    )
    deployed_shape = _shape(
        describe_table(deployed), client.describe_table(TableName=deployed.table)["Table"]
    )
    assert deployed_shape == library_shape
    assert library_shape["key_schema"] == {"HASH": "pk", "RANGE": "sk"}
    assert [index[0] for index in library_shape["indexes"]] == ["audience"]

    library_ttl = client.describe_time_to_live(TableName="lib-shape")["TimeToLiveDescription"]
    assert library_ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}
    # moto's CloudFormation ignores TimeToLiveSpecification (the deployed table reports
    # DISABLED), so the template's own specification is what is compared.
    deployed_ttl = client.describe_time_to_live(TableName=deployed.table)["TimeToLiveDescription"]
    assert deployed_ttl["TimeToLiveStatus"] == "DISABLED", (
        "moto now applies TimeToLiveSpecification: compare the deployed TTL instead"
    )
    spec = transformed["Resources"]["Table"]["Properties"]["TimeToLiveSpecification"]
    assert spec == {"AttributeName": library_ttl["AttributeName"], "Enabled": True}


def test_deployed_functions_read_their_settings(stack: Stack) -> None:
    client: Any = boto3.client("lambda", region_name=REGION)
    functions = {f["FunctionName"]: f for f in client.list_functions()["Functions"]}
    handlers = {f["Handler"].removeprefix(HANDLER_PREFIX) for f in functions.values()}
    off = {permissions.AUTHORIZER, *permissions.PUBLISH_HANDLERS}  # AuthMode none, no publishers
    assert handlers == set(EXPECTED_ACTIONS) - off
    for function in functions.values():
        assert function["Runtime"] == "python3.12"
        env = {k: str(v) for k, v in function["Environment"]["Variables"].items()}
        config = FanoutConfig.from_env(env)
        assert config.table == stack.physical["Table"]
        assert config.queue_url == stack.physical["Queue"]
        assert (config.strategy, config.concurrency, config.segments, config.ttl_seconds) == (
            defaults.DEFAULT_STRATEGY,
            defaults.DEFAULT_CONCURRENCY,
            defaults.DEFAULT_SEGMENTS,
            defaults.DEFAULT_TTL_SECONDS,
        )


def test_deployed_queue_feeds_the_worker(stack: Stack) -> None:
    sqs: Any = boto3.client("sqs", region_name=REGION)
    lambdas: Any = boto3.client("lambda", region_name=REGION)
    queue = sqs.get_queue_attributes(QueueUrl=stack.physical["Queue"], AttributeNames=["All"])[
        "Attributes"
    ]
    dead_letter = sqs.get_queue_attributes(
        QueueUrl=stack.physical["DeadLetterQueue"], AttributeNames=["All"]
    )["Attributes"]
    assert json.loads(queue["RedrivePolicy"]) == {
        "deadLetterTargetArn": dead_letter["QueueArn"],
        "maxReceiveCount": 5,
    }
    assert int(dead_letter["MessageRetentionPeriod"]) > int(queue["MessageRetentionPeriod"])

    [mapping] = lambdas.list_event_source_mappings()["EventSourceMappings"]
    assert mapping["EventSourceArn"] == queue["QueueArn"]
    assert mapping["BatchSize"] == 10
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": 10}
    worker = lambdas.get_function(FunctionName=mapping["FunctionArn"])["Configuration"]
    assert worker["Handler"] == f"{HANDLER_PREFIX}sqs_worker"
    # AWS's advice: a visibility timeout of at least 6 times the function's timeout.
    assert int(queue["VisibilityTimeout"]) >= 6 * worker["Timeout"]


def test_outputs_are_the_stage_urls(stack: Stack) -> None:
    host = f"{STAND_INS['WebSocketApi']}.execute-api.{REGION}.amazonaws.com"
    assert stack.outputs["WebSocketURL"] == f"wss://{host}/{STAND_INS['Stage']}"
    assert stack.outputs["CallbackURL"] == f"https://{host}/{STAND_INS['Stage']}"
    assert stack.outputs["TableName"] == stack.physical["Table"]
    assert stack.outputs["QueueURL"] == stack.physical["Queue"]


# -- sign-in ----------------------------------------------------------------------------------


def test_auth_mode_puts_a_request_authorizer_on_connect_only(transformed: dict[str, Any]) -> None:
    for auth_on, in_query in ((False, False), (True, False), (True, True)):
        conditions = {**DEFAULT_CONDITIONS, "AuthOn": auth_on, "TokenInQuery": in_query}
        template = resolve_conditions(transformed, conditions)
        for route in of_type(template, "AWS::ApiGatewayV2::Route").values():
            properties = route["Properties"]
            if properties["RouteKey"] == "$connect" and auth_on:
                assert properties["AuthorizationType"] == "CUSTOM"
                assert properties["AuthorizerId"] == {"Ref": "ConnectAuthorizer"}
            else:
                assert properties["AuthorizationType"] == "NONE", properties["RouteKey"]
                assert "AuthorizerId" not in properties
        [authorizer] = of_type(template, "AWS::ApiGatewayV2::Authorizer").values()
        source = "querystring.token" if in_query else f"header.{subprotocol.HEADER}"
        assert authorizer["Properties"]["IdentitySource"] == [f"route.request.{source}"]

    [(authorizer_id, authorizer)] = of_type(transformed, "AWS::ApiGatewayV2::Authorizer").items()
    properties = authorizer["Properties"]
    assert (properties["AuthorizerType"], properties["ApiId"]) == (
        "REQUEST",
        {"Ref": "WebSocketApi"},
    )
    function_id = arn_of(properties["AuthorizerUri"])
    assert function_handlers(transformed)[function_id] == permissions.AUTHORIZER
    [permission] = [
        p["Properties"]
        for p in of_type(transformed, "AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] == {"Ref": function_id}
    ]
    assert permission["Principal"] == "apigateway.amazonaws.com"
    assert permission["SourceArn"] == {
        "Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:"
        f"${{WebSocketApi}}/authorizers/${{{authorizer_id}}}"
    }
    # Only with AuthMode jwt or custom: the authorizer, its function, role, permission, log
    # group and throttles alarm.
    signing_in = {n for n, r in transformed["Resources"].items() if r.get("Condition") == "AuthOn"}
    role = arn_of(transformed["Resources"][function_id]["Properties"]["Role"])
    assert signing_in == {authorizer_id, function_id, role, "AuthorizerPermission"} | {
        "AuthorizerLogGroup",
        "AuthorizerThrottlesAlarm",
    }
    # Least privilege: its role writes its logs and calls nothing else.
    assert granted_actions(transformed)[permissions.AUTHORIZER] == {}


def _with(value: Any, parameters: dict[str, str], conditions: dict[str, bool]) -> Any:
    """``value`` with each Ref to a parameter replaced by its value, conditions decided."""
    value = resolve_conditions(value, conditions)
    if isinstance(value, dict):
        if set(value) == {"Ref"} and value["Ref"] in parameters:
            return parameters[value["Ref"]]
        return {k: _with(v, parameters, conditions) for k, v in value.items()}
    return value


def test_the_authorizer_reads_the_sign_in_parameters(source: dict[str, Any]) -> None:
    from fanout_core.signin import SignInConfig

    parameters = source["Parameters"]
    assert parameters["AuthMode"]["AllowedValues"] == ["none", "jwt", "custom"]
    assert parameters["AuthMode"]["Default"] == "none"
    assert parameters["TokenSource"]["AllowedValues"] == ["header", "query"]
    issuer_pattern = re.compile(parameters["JwtIssuer"]["AllowedPattern"])
    cognito = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123"
    assert issuer_pattern.fullmatch(cognito)
    assert issuer_pattern.fullmatch("")
    assert not issuer_pattern.fullmatch("http://issuer.example")
    variables = source["Resources"]["AuthorizerFunction"]["Properties"]["Environment"]["Variables"]
    values = {name: p.get("Default", "") for name, p in parameters.items()}

    jwt = {**values, "AuthMode": "jwt", "JwtIssuer": cognito, "JwtAudience": "client-1"}
    jwt.update(JwtContextClaims="rooms,groups=cognito:groups", JwtTokenUse="access")
    env = _with(variables, jwt, {**DEFAULT_CONDITIONS, "AuthOn": True})
    config = SignInConfig.from_env({k: str(v) for k, v in env.items()})
    assert (config.issuer, config.audience, config.token_use) == (cognito, ("client-1",), "access")
    assert config.context_claims == (("rooms", "rooms"), ("groups", "cognito:groups"))
    assert config.key_set_url == f"{cognito}/.well-known/jwks.json"
    assert config.hook is None

    custom = {**values, "AuthMode": "custom", "CustomAuthorizer": "app.auth:check"}
    env = _with(variables, custom, {**DEFAULT_CONDITIONS, "AuthOn": True, "CustomAuth": True})
    assert SignInConfig.from_env({k: str(v) for k, v in env.items()}).hook == "app.auth:check"
    pattern = re.compile(parameters["CustomAuthorizer"]["AllowedPattern"])
    assert pattern.fullmatch("app.auth:check")
    assert not pattern.fullmatch("app.auth")

    # CloudFormation refuses AuthMode jwt without an issuer and an audience, custom without
    # its check, before anything is created.
    rules = source["Rules"]
    assert rules["JwtNeedsIssuerAndAudience"]["RuleCondition"] == {
        "Fn::Equals": [{"Ref": "AuthMode"}, "jwt"]
    }
    asserted = [a["Assert"] for a in rules["JwtNeedsIssuerAndAudience"]["Assertions"]]
    assert asserted == [
        {"Fn::Not": [{"Fn::Equals": [{"Ref": name}, ""]}]} for name in ("JwtIssuer", "JwtAudience")
    ]
    [check] = rules["CustomNeedsItsCheck"]["Assertions"]
    assert check["Assert"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "CustomAuthorizer"}, ""]}]}


# -- operating it: log groups, alarms, the dashboard ---------------------------------------


def test_every_function_has_a_log_group_with_the_retention_parameter(
    source: dict[str, Any], transformed: dict[str, Any]
) -> None:
    retention = source["Parameters"]["LogRetentionDays"]
    assert retention["Type"] == "Number"
    assert retention["Default"] in retention["AllowedValues"]
    groups = of_type(transformed, "AWS::Logs::LogGroup")
    named = {}
    for group in groups.values():
        properties = group["Properties"]
        assert properties["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        [(function_id, attribute)] = references(properties["LogGroupName"])
        assert attribute is None
        assert properties["LogGroupName"] == {"Fn::Sub": f"/aws/lambda/${{{function_id}}}"}
        named[function_id] = group
    assert set(named) == set(function_handlers(transformed))


def _alarms(transformed: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: a["Properties"] for name, a in of_type(transformed, "AWS::CloudWatch::Alarm").items()
    }


def _metric_names(alarm: dict[str, Any]) -> set[tuple[str, str]]:
    """(namespace, metric) of every metric an alarm watches."""
    if "MetricName" in alarm:
        return {(json.dumps(alarm["Namespace"]), alarm["MetricName"])}
    return {
        (
            json.dumps(q["MetricStat"]["Metric"]["Namespace"]),
            q["MetricStat"]["Metric"]["MetricName"],
        )
        for q in alarm["Metrics"]
        if "MetricStat" in q
    }


def test_the_alarms_watch_what_docs_operate_says_and_notify_the_topic(
    source: dict[str, Any], transformed: dict[str, Any]
) -> None:
    alarms = _alarms(transformed)
    ours = json.dumps({"Ref": "MetricsNamespace"})
    assert {name: _metric_names(alarm) for name, alarm in alarms.items()} == {
        "DeadLetterQueueAlarm": {('"AWS/SQS"', "ApproximateNumberOfMessagesVisible")},
        "WorkerErrorsAlarm": {
            ('"AWS/Lambda"', "Errors"),
            ('"AWS/Lambda"', "Throttles"),
            (ours, "Errors"),
        },
        "ThrottlesAlarm": {('"AWS/Lambda"', "Throttles")},
        "AuthorizerThrottlesAlarm": {('"AWS/Lambda"', "Throttles")},
        "FailedAlarm": {(ours, "Failed")},
        "ThrottledAlarm": {(ours, "Throttled")},
    }
    functions = function_handlers(transformed)
    throttles = alarms["ThrottlesAlarm"]["Metrics"]
    watched = {
        functions[q["MetricStat"]["Metric"]["Dimensions"][0]["Value"]["Ref"]]
        for q in throttles
        if "MetricStat" in q
    }
    assert watched == set(ROUTES.values())  # every function a client's request runs
    assert len(watched) <= 10  # CloudWatch's most metrics in one alarm
    # The authorizer, which runs on every connect when sign-in is on, in an alarm of its own.
    [authorizer] = alarms["AuthorizerThrottlesAlarm"]["Dimensions"]
    assert functions[authorizer["Value"]["Ref"]] == permissions.AUTHORIZER
    assert transformed["Resources"]["AuthorizerThrottlesAlarm"]["Condition"] == "AuthOn"
    failed = alarms["FailedAlarm"]
    assert (failed["Period"] * failed["EvaluationPeriods"], failed["DatapointsToAlarm"]) == (300, 5)
    sustained = alarms["ThrottledAlarm"]
    assert sustained["Period"] * sustained["EvaluationPeriods"] >= 900
    topic = source["Parameters"]["AlarmTopicArn"]
    assert topic["Default"] == ""
    assert source["Conditions"]["AlarmTopicOn"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}]
    }
    notify = {"Fn::If": ["AlarmTopicOn", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    for name, alarm in alarms.items():
        assert alarm["AlarmActions"] == alarm["OKActions"] == notify, name
        assert alarm["TreatMissingData"] == "notBreaching", name
        fanout_dimensions = [
            d
            for q in alarm.get("Metrics", [alarm])
            for d in (q.get("MetricStat", {}).get("Metric", q).get("Dimensions") or [])
            if d["Name"] in ("Service", "Strategy")
        ]
        for dimension in fanout_dimensions:  # the values every function writes
            assert dimension["Value"] in ({"Ref": "AWS::StackName"}, {"Ref": "Strategy"})


def test_the_dashboard_shows_the_fanout_metrics_beside_api_gateways(
    transformed: dict[str, Any],
) -> None:
    from fanout_core import metrics

    [dashboard] = of_type(transformed, "AWS::CloudWatch::Dashboard").values()
    body = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    names = set(_SUB_REFERENCE.findall(body))
    assert {name for name, _ in names} <= {
        "AWS::Region",
        "AWS::StackName",
        "MetricsNamespace",
        "Strategy",
        "WebSocketApi",
        "StageName",
        "DeadLetterQueue",
    }
    widgets = json.loads(body)["widgets"]
    shown: dict[str, set[str]] = {}
    for widget in widgets:
        for metric in widget["properties"]["metrics"]:
            namespace, name = metric[0], metric[1]
            shown.setdefault(namespace, set()).add(name)
            if namespace == "${MetricsNamespace}":
                assert metric[2:6] == ["Service", "${AWS::StackName}", "Strategy", "${Strategy}"]
            if namespace == "AWS/ApiGateway":
                assert metric[2:6] == ["ApiId", "${WebSocketApi}", "Stage", "${StageName}"]
    assert shown["AWS/ApiGateway"] == {
        "ConnectCount",
        "MessageCount",
        "ExecutionError",
        "IntegrationLatency",
    }
    assert shown["${MetricsNamespace}"] == set(metrics.UNITS)  # every metric the library writes
