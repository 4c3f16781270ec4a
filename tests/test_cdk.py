"""fanout_core.cdk.FanoutWebSocket, synthesized offline (aws_cdk.assertions, Node).

The construct must build what template.yaml builds: the same table, queues, routes and
route responses, and, function by function, the same IAM statements for the same options
(both come from fanout_core.deploy.permissions; here they are compared after synth). Synth
takes seconds, so these run in make test-ci (marker ci).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Template

from fanout_core import subprotocol
from fanout_core.cdk import FanoutSettings, FanoutWebSocket, Monitoring, SignIn, WorkerOptions
from fanout_core.config import FanoutConfig
from fanout_core.deploy import permissions
from fanout_core.errors import ConfigError
from tests.test_deploy_docs import code_block
from tests.test_template import (
    BASIC_EXECUTION_ROLE,
    _alarms,
    _source,
    _transformed,
    function_handlers,
    granted_actions,
    of_type,
    references,
    statement_actions,
)

pytestmark = pytest.mark.ci

RESOURCE_NAMES = ("table", "index", "queue", "connections", "disconnections")
ALL_ON = FanoutSettings(
    strategy="sqs_batched",
    presence_events=True,
    rate_limit="10/1",
    history_seconds=600,
    user_rate_limit="30/60",
    max_connections_per_user=5,
)
COGNITO = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123"
# As the template's AuthMode=jwt: every handler the template can deploy is here to compare.
SIGN_IN = SignIn(issuer=COGNITO, audience="client-1", context_claims="rooms")


@dataclass(frozen=True)
class Synth:
    """A synthesized stack: its template, and how it writes each resource's ARN."""

    template: dict[str, Any]
    resources: dict[str, Any]
    construct: FanoutWebSocket

    def ref(self, name: str) -> dict[str, str]:
        """A Ref to the table or queue the resource name ``name`` is the ARN of."""
        return {"Ref": self.resources[name]["Fn::GetAtt"][0]}

    def resource(self, logical_id: str) -> dict[str, Any]:
        resource: dict[str, Any] = self.template["Resources"][logical_id]
        return resource


def synth(
    code: Path, extra: Callable[[cdk.Stack, FanoutWebSocket], None] | None = None, **props: Any
) -> Synth:
    app = cdk.App()
    stack = cdk.Stack(app, "Chat")
    fanout = FanoutWebSocket(stack, "Fanout", code=lambda_.Code.from_asset(str(code)), **props)
    if extra is not None:
        extra(stack, fanout)
    resources = {}
    for name in RESOURCE_NAMES:
        try:
            resources[name] = stack.resolve(fanout.arn_of(name))
        except ValueError:  # no queue without the worker
            continue
    return Synth(dict(Template.from_stack(stack).to_json()), resources, fanout)


@pytest.fixture(scope="module")
def code(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A code directory for the assets; what goes in it is tests/test_package.py's matter."""
    path = tmp_path_factory.mktemp("code")
    (path / "placeholder.txt").write_text("make package builds the real one\n")
    return path


def users_function(stack: cdk.Stack, name: str, handler: str) -> lambda_.Function:
    """A function of the user's own, not fanout-core's."""
    return lambda_.Function(
        stack,
        name,
        runtime=lambda_.Runtime.PYTHON_3_12,
        handler=handler,
        code=lambda_.Code.from_inline("def handler(event, context): pass"),
    )


def add_publisher(stack: cdk.Stack, fanout: FanoutWebSocket) -> None:
    fanout.grant_publish(users_function(stack, "Notify", "notify.handler"))


@pytest.fixture(scope="module")
def default(code: Path) -> Synth:
    """sqs_batched (so the worker and queue, as in the template), a user's publisher, sign-in."""
    settings = FanoutSettings(strategy="sqs_batched")
    return synth(code, add_publisher, settings=settings, sign_in=SIGN_IN)


@pytest.fixture(scope="module")
def all_on(code: Path) -> Synth:
    return synth(code, settings=ALL_ON, sign_in=SIGN_IN)


@pytest.fixture(scope="module")
def single(code: Path) -> Synth:
    """One function for every route, no worker, and a $connect authorizer of the user's."""
    app = cdk.App()
    stack = cdk.Stack(app, "Chat")
    check = users_function(stack, "CheckToken", "auth.handler")
    authorizer = authorizers.WebSocketLambdaAuthorizer(
        "TokenAuthorizer", check, identity_source=["route.request.querystring.token"]
    )
    fanout = FanoutWebSocket(
        stack,
        "Fanout",
        code=lambda_.Code.from_asset(str(code)),
        functions="single",
        connect_authorizer=authorizer,
    )
    resources = {n: stack.resolve(fanout.arn_of(n)) for n in RESOURCE_NAMES if n != "queue"}
    return Synth(dict(Template.from_stack(stack).to_json()), resources, fanout)


def fanout_functions(template: dict[str, Any]) -> dict[str, str]:
    """Function logical id -> handler, for the library's handlers."""
    prefix = f"{permissions.HANDLER_MODULE}."
    return {
        name: f["Properties"]["Handler"].removeprefix(prefix)
        for name, f in of_type(template, "AWS::Lambda::Function").items()
        if f["Properties"]["Handler"].startswith(prefix)
    }


def role_grant(synth: Synth, function_id: str) -> dict[str, frozenset[str]]:
    """What the function's role allows, by permissions resource name; logs only besides."""
    template = synth.template
    [(role_id, _)] = references(synth.resource(function_id)["Properties"]["Role"])
    role = synth.resource(role_id)["Properties"]
    managed = json.dumps(role.get("ManagedPolicyArns", []))
    assert BASIC_EXECUTION_ROLE.split(":", 5)[-1] in managed
    assert len(role["ManagedPolicyArns"]) == 1
    assert "Policies" not in role
    statements = [
        statement
        for policy in of_type(template, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    return statement_actions(statements, function_id, synth.resources)


def grants_by_handler(synth: Synth) -> dict[str, dict[str, frozenset[str]]]:
    return {h: role_grant(synth, f) for f, h in fanout_functions(synth.template).items()}


def routes_and_more(granted: dict[str, Any]) -> dict[str, Any]:
    """The template's grants less its optional publishers (the construct's are off too)."""
    return {h: g for h, g in granted.items() if h not in permissions.PUBLISH_HANDLERS}


def test_the_publishers_are_options_with_the_templates_grants(code: Path) -> None:
    from aws_cdk import aws_events as events

    pattern = events.EventPattern(source=["orders"])
    made = synth(code, http_publish=True, event_pattern=pattern, worker=True)
    grants = grants_by_handler(made)
    template = granted_actions(_transformed())
    for handler in permissions.PUBLISH_HANDLERS:
        assert grants[handler] == template[handler] == permissions.PUBLISH
    [url] = of_type(made.template, "AWS::Lambda::Url").values()
    assert url["Properties"]["AuthType"] == "AWS_IAM"
    rules = of_type(made.template, "AWS::Events::Rule").values()
    assert {"source": ["orders"]} in [r["Properties"].get("EventPattern") for r in rules]
    assert made.construct.publish_url is not None


def test_each_function_may_do_what_the_template_grants(default: Synth) -> None:
    assert grants_by_handler(default) == permissions.grants()
    assert grants_by_handler(default) == routes_and_more(granted_actions(_transformed()))


def test_the_settings_add_what_the_templates_conditions_add(all_on: Synth) -> None:
    on = {
        "presence_events": True,
        "rate_limit": True,
        "history": True,
        "user_rate_limit": True,
        "max_connections": True,
    }
    assert grants_by_handler(all_on) == permissions.grants(**on)
    assert grants_by_handler(all_on) == routes_and_more(granted_actions(_transformed(), **on))


def test_one_function_for_every_route_gets_their_union(single: Synth) -> None:
    grants = grants_by_handler(single)
    routes = [permissions.grants()[h] for h in permissions.ROUTES.values()]
    no_queue = [{a: r - {"queue"} for a, r in g.items() if r - {"queue"}} for g in routes]
    assert grants[permissions.WEBSOCKET] == permissions.merged(*no_queue)
    # No worker, no queue.
    assert set(grants) == {permissions.WEBSOCKET, permissions.SWEEP, permissions.GAUGE}
    assert not of_type(single.template, "AWS::SQS::Queue")
    assert "FANOUT_QUEUE_URL" not in single.construct.environment


def test_grant_publish_gives_exactly_the_publisher_policy(default: Synth) -> None:
    [notify] = [
        name
        for name, f in of_type(default.template, "AWS::Lambda::Function").items()
        if f["Properties"]["Handler"] == "notify.handler"
    ]
    assert role_grant(default, notify) == permissions.PUBLISHER
    variables = default.resource(notify)["Properties"]["Environment"]["Variables"]
    assert set(variables) == set(default.construct.environment)
    assert variables["FANOUT_TABLE"] == default.ref("table")
    assert variables["FANOUT_QUEUE_URL"] == default.ref("queue")


def test_the_table_and_queues_are_the_templates(default: Synth) -> None:
    source = _source()["Resources"]

    def canonical(value: Any) -> Any:
        if isinstance(value, list):
            return sorted((canonical(v) for v in value), key=json.dumps)
        if isinstance(value, dict):
            return {k: canonical(v) for k, v in value.items()}
        return value

    [table] = of_type(default.template, "AWS::DynamoDB::Table").values()
    assert canonical(table["Properties"]) == canonical(source["Table"]["Properties"])
    queues = of_type(default.template, "AWS::SQS::Queue")
    [(queue_id, queue)] = [(k, q) for k, q in queues.items() if "RedrivePolicy" in q["Properties"]]
    [dead_letter_id] = set(queues) - {queue_id}
    expected = dict(source["Queue"]["Properties"])
    expected["RedrivePolicy"] = {
        "deadLetterTargetArn": {"Fn::GetAtt": [dead_letter_id, "Arn"]},
        "maxReceiveCount": 5,
    }
    assert queue["Properties"] == expected
    assert queues[dead_letter_id]["Properties"] == source["DeadLetterQueue"]["Properties"]


def _route_handlers(synth: Synth) -> dict[str, str]:
    template = synth.template
    functions = fanout_functions(template)
    wired = {}
    for route in of_type(template, "AWS::ApiGatewayV2::Route").values():
        [(integration_id, _)] = references(route["Properties"]["Target"])
        uri = synth.resource(integration_id)["Properties"]["IntegrationUri"]
        [function_id] = [name for name, _ in references(uri) if name in functions]
        wired[route["Properties"]["RouteKey"]] = functions[function_id]
    return wired


def test_every_route_reaches_its_handler_and_answers(default: Synth) -> None:
    template = default.template
    assert _route_handlers(default) == dict(permissions.ROUTES)
    [api] = of_type(template, "AWS::ApiGatewayV2::Api").values()
    assert api["Properties"]["RouteSelectionExpression"] == "$request.body.action"
    routes = of_type(template, "AWS::ApiGatewayV2::Route")
    responses = of_type(template, "AWS::ApiGatewayV2::RouteResponse").values()
    answered = {}
    for response in responses:
        [(route_id, _)] = references(response["Properties"]["RouteId"])
        answered[routes[route_id]["Properties"]["RouteKey"]] = response["Properties"]
    assert set(answered) == set(permissions.ROUTES) - permissions.ONE_WAY_ROUTES
    assert {r["RouteResponseKey"] for r in answered.values()} == {"$default"}
    for route_id, route in routes.items():
        two_way = route["Properties"]["RouteKey"] not in permissions.ONE_WAY_ROUTES
        expression = route["Properties"].get("RouteResponseSelectionExpression")
        assert expression == ("$default" if two_way else None), route_id
        guarded = route["Properties"]["RouteKey"] == "$connect"  # sign-in is on here
        expected = "CUSTOM" if guarded else "NONE"
        assert route["Properties"].get("AuthorizationType", "NONE") == expected
    [(_, stage)] = of_type(template, "AWS::ApiGatewayV2::Stage").items()
    assert stage["Properties"]["AutoDeploy"] is True
    assert stage["Properties"]["StageName"] == "prod"
    assert set(routes) <= set(stage["DependsOn"])  # the first deployment has every route


def assert_guards_connect_only(template: dict[str, Any], authorizer_id: str) -> None:
    """The authorizer is on $connect, and no other route has one."""
    for route in of_type(template, "AWS::ApiGatewayV2::Route").values():
        properties = route["Properties"]
        if properties["RouteKey"] == "$connect":
            assert properties["AuthorizationType"] == "CUSTOM"
            assert properties["AuthorizerId"] == {"Ref": authorizer_id}
        else:
            assert properties.get("AuthorizationType", "NONE") == "NONE"


def test_a_connect_authorizer_guards_connect_only(single: Synth) -> None:
    assert set(_route_handlers(single).values()) == {permissions.WEBSOCKET}
    [(authorizer_id, authorizer)] = of_type(
        single.template, "AWS::ApiGatewayV2::Authorizer"
    ).items()
    assert authorizer["Properties"]["AuthorizerType"] == "REQUEST"
    assert_guards_connect_only(single.template, authorizer_id)


def test_the_worker_and_the_sweep_are_wired(default: Synth) -> None:
    template = default.template
    functions = {h: f for f, h in fanout_functions(template).items()}
    [mapping] = of_type(template, "AWS::Lambda::EventSourceMapping").values()
    properties = mapping["Properties"]
    assert properties["FunctionName"] == {"Ref": functions[permissions.WORKER]}
    assert (properties["BatchSize"], properties["FunctionResponseTypes"]) == (
        10,
        ["ReportBatchItemFailures"],
    )
    assert properties["ScalingConfig"] == {"MaximumConcurrency": 10}
    assert properties["EventSourceArn"] == default.resources["queue"]
    worker = default.resource(functions[permissions.WORKER])["Properties"]
    [queue] = [
        q
        for q in of_type(template, "AWS::SQS::Queue").values()
        if "RedrivePolicy" in q["Properties"]
    ]
    assert queue["Properties"]["VisibilityTimeout"] >= 6 * worker["Timeout"]
    schedules = {
        json.dumps(rule["Properties"]["Targets"][0]["Arn"]): rule["Properties"][
            "ScheduleExpression"
        ]
        for rule in of_type(template, "AWS::Events::Rule").values()
    }
    assert schedules == {
        json.dumps({"Fn::GetAtt": [functions[permissions.SWEEP], "Arn"]}): "rate(1 hour)",
        json.dumps({"Fn::GetAtt": [functions[permissions.GAUGE], "Arn"]}): "rate(5 minutes)",
    }


def test_every_function_reads_the_settings(all_on: Synth) -> None:
    for function_id, handler in fanout_functions(all_on.template).items():
        properties = all_on.resource(function_id)["Properties"]
        assert properties["Runtime"] == "python3.12"
        variables = properties["Environment"]["Variables"]
        if handler == permissions.AUTHORIZER:  # its own variables: the others read none
            assert variables == SIGN_IN.environment()
            continue
        assert variables.pop("FANOUT_TABLE") == all_on.ref("table")
        assert variables.pop("FANOUT_QUEUE_URL") == all_on.ref("queue")
        assert variables.pop("FANOUT_SERVICE") == "Chat"  # the stack's name, as the template's
        assert variables == ALL_ON.environment()
        read = FanoutConfig.from_env(variables)
        assert (read.strategy, read.presence_events, read.history_seconds) == (
            "sqs_batched",
            True,
            600,
        )


def test_settings_the_functions_would_refuse_fail_before_synth(code: Path) -> None:
    with pytest.raises(ConfigError, match="FANOUT_CONCURRENCY"):
        FanoutSettings(concurrency=5000)
    with pytest.raises(ConfigError, match="FANOUT_RATE_LIMIT"):
        FanoutSettings(rate_limit="often")
    with pytest.raises(ValueError, match="max_concurrency: 2 to 1000"):
        WorkerOptions(max_concurrency=1)
    stack = cdk.Stack(cdk.App(), "Chat")
    asset = lambda_.Code.from_asset(str(code))
    with pytest.raises(ValueError, match="stage_name"):
        FanoutWebSocket(stack, "Staged", code=asset, stage_name="prod/v1")
    with pytest.raises(ValueError, match="sqs_batched needs the worker"):
        FanoutWebSocket(
            stack,
            "Fanout",
            code=lambda_.Code.from_asset(str(code)),
            settings=FanoutSettings(strategy="sqs_batched"),
            worker=False,
        )


def test_the_docs_app_synthesizes(tmp_path: Path) -> None:
    """docs/deploy.md's app.py, as written, next to what make package builds."""
    app = code_block("python", "# app.py: `make package` first")
    (tmp_path / "app.py").write_text(app)
    (tmp_path / "build" / "lambda" / "function").mkdir(parents=True)
    (tmp_path / "build" / "lambda" / "function" / "placeholder.txt").write_text("code\n")
    with zipfile.ZipFile(tmp_path / "build" / "lambda" / "layer.zip", "w") as layer:
        layer.writestr("python/placeholder.txt", "layer\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "notify.py").write_text("def handler(event, context): pass\n")
    out = subprocess.run(
        [sys.executable, "app.py"],
        cwd=tmp_path,
        env={**os.environ, "CDK_OUTDIR": str(tmp_path / "cdk.out")},  # as `cdk synth` sets it
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    template = json.loads((tmp_path / "cdk.out" / "Chat.template.json").read_text())
    [notify] = [
        f
        for f in of_type(template, "AWS::Lambda::Function").values()
        if f["Properties"]["Handler"] == "notify.handler"
    ]
    variables = notify["Properties"]["Environment"]["Variables"]
    assert {"FANOUT_TABLE", "FANOUT_QUEUE_URL", "FANOUT_STRATEGY"} <= set(variables)
    assert variables["FANOUT_STRATEGY"] == "sqs_batched"
    assert "WebSocketURL" in template["Outputs"]
    assert len(of_type(template, "AWS::CloudWatch::Alarm")) == 5  # no sign-in: 5 alarms
    assert of_type(template, "AWS::CloudWatch::Dashboard")


def _authorizer_of(synth: Synth) -> tuple[str, dict[str, Any]]:
    [(authorizer_id, authorizer)] = of_type(synth.template, "AWS::ApiGatewayV2::Authorizer").items()
    return authorizer_id, authorizer["Properties"]


def test_sign_in_builds_the_template_s_authorizer(default: Synth, code: Path) -> None:
    """What AuthMode=jwt builds: a REQUEST authorizer on $connect alone, identified by the
    subprotocol header, running fanout_core.handlers.authorizer with its own variables and a
    role that only writes logs."""
    template = default.template
    authorizer_id, authorizer = _authorizer_of(default)
    assert authorizer["AuthorizerType"] == "REQUEST"
    assert authorizer["IdentitySource"] == [f"route.request.header.{subprotocol.HEADER}"]
    assert_guards_connect_only(template, authorizer_id)
    functions = {h: f for f, h in fanout_functions(template).items()}
    function = default.resource(functions[permissions.AUTHORIZER])["Properties"]
    assert function["Timeout"] == 10
    assert function["Environment"]["Variables"] == {
        "FANOUT_JWT_ISSUER": COGNITO,
        "FANOUT_JWT_AUDIENCE": "client-1",
        "FANOUT_JWT_CONTEXT_CLAIMS": "rooms",
    }
    assert role_grant(default, functions[permissions.AUTHORIZER]) == {}
    [permission] = [
        p["Properties"]
        for p in of_type(template, "AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] == {"Fn::GetAtt": [functions["authorizer"], "Arn"]}
    ]
    assert permission["Principal"] == "apigateway.amazonaws.com"
    assert "/authorizers/" in json.dumps(permission["SourceArn"])
    # ?token= instead; your own check; and what the authorizer would refuse fails the synth.
    query = synth(code, sign_in=SignIn(hook="app.auth:check", token_source="query"))
    assert _authorizer_of(query)[1]["IdentitySource"] == ["route.request.querystring.token"]
    with pytest.raises(ConfigError, match="FANOUT_JWT_AUDIENCE"):
        SignIn(issuer=COGNITO)
    with pytest.raises(ConfigError, match="FANOUT_JWT_ISSUER"):
        SignIn(issuer="http://issuer.example", audience="a")
    with pytest.raises(ValueError, match="connect_authorizer"):
        synth(code, sign_in=SIGN_IN, connect_authorizer=object())


# -- monitoring: the template's log groups, alarms and dashboard ----------------------------


@pytest.fixture(scope="module")
def monitored(code: Path) -> Synth:
    """As ``default`` (sqs_batched, sign-in), with Monitoring and an SNS topic of the user's."""

    def topic(stack: cdk.Stack) -> Monitoring:
        return Monitoring(alarm_topic=sns.Topic(stack, "Alarms"))

    app = cdk.App()
    stack = cdk.Stack(app, "Chat")
    fanout = FanoutWebSocket(
        stack,
        "Fanout",
        code=lambda_.Code.from_asset(str(code)),
        settings=FanoutSettings(strategy="sqs_batched"),
        sign_in=SIGN_IN,
        monitoring=topic(stack),
    )
    return Synth(dict(Template.from_stack(stack).to_json()), {}, fanout)


def logical_id(construct: Any) -> str:
    """The logical id of a construct's CloudFormation resource."""
    element = construct.node.default_child
    assert isinstance(element, cdk.CfnElement)
    return cdk.Stack.of(construct).get_logical_id(element)


def _named(value: Any, functions: dict[str, str]) -> Any:
    """A dimension's or namespace's value as what it stands for, in either template."""
    if value in ({"Ref": "MetricsNamespace"}, "fanout"):
        return "namespace"
    if value in ({"Ref": "AWS::StackName"}, "Chat"):
        return "service"
    if value in ({"Ref": "Strategy"}, "sqs_batched"):
        return "strategy"
    if isinstance(value, dict) and "Ref" in value and value["Ref"] in functions:
        return functions[value["Ref"]]
    if isinstance(value, dict) and value.get("Fn::GetAtt", [None, None])[1] == "QueueName":
        return "dead-letter queue"
    assert isinstance(value, str), value
    return value


def _alarm_shapes(
    alarms: dict[str, dict[str, Any]], functions: dict[str, str]
) -> dict[str, tuple[Any, ...]]:
    """What each alarm watches and when it fires, with the templates' own names left out."""

    def metric(metric: dict[str, Any], stat: str, period: int) -> tuple[Any, ...]:
        dimensions = {
            (d["Name"], _named(d["Value"], functions)) for d in metric.get("Dimensions", [])
        }
        namespace = _named(metric["Namespace"], functions)
        return (namespace, metric["MetricName"], frozenset(dimensions), stat, period)

    shapes = {}
    for name, alarm in alarms.items():
        if "Metrics" in alarm:
            [expression] = [q["Expression"] for q in alarm["Metrics"] if "Expression" in q]
            watched = frozenset(
                (
                    q["Id"],
                    metric(
                        q["MetricStat"]["Metric"],
                        q["MetricStat"]["Stat"],
                        q["MetricStat"]["Period"],
                    ),
                )
                for q in alarm["Metrics"]
                if "MetricStat" in q
            )
            what: Any = (frozenset(expression.split(" + ")), watched)
        else:
            what = metric(alarm, alarm["Statistic"], alarm["Period"])
        shapes[name] = (
            what,
            alarm["Threshold"],
            alarm["ComparisonOperator"],
            alarm["EvaluationPeriods"],
            alarm.get("DatapointsToAlarm"),
            alarm["TreatMissingData"],
        )
    return shapes


def test_monitoring_builds_the_template_s_alarms_notifying_the_topic(monitored: Synth) -> None:
    source = _transformed()
    expected = _alarm_shapes(_alarms(source), function_handlers(source))
    construct = monitored.construct
    assert construct.monitored is not None
    ours = {
        name: monitored.resource(logical_id(alarm))["Properties"]
        for name, alarm in construct.monitored.alarms.items()
    }
    assert _alarm_shapes(ours, fanout_functions(monitored.template)) == expected
    [(topic_id, _)] = of_type(monitored.template, "AWS::SNS::Topic").items()
    for name, alarm in ours.items():
        assert alarm["AlarmActions"] == alarm["OKActions"] == [{"Ref": topic_id}], name


def test_monitoring_gives_every_function_a_log_group_with_its_retention(
    monitored: Synth, default: Synth
) -> None:
    functions = fanout_functions(monitored.template)
    groups = of_type(monitored.template, "AWS::Logs::LogGroup").values()
    named = {}
    for group in groups:
        properties = group["Properties"]
        assert properties["RetentionInDays"] == 30
        assert group["DeletionPolicy"] == "Delete"  # the construct's removal_policy
        [(function_id, _)] = references(properties["LogGroupName"])
        assert properties["LogGroupName"] == {
            "Fn::Join": ["", ["/aws/lambda/", {"Ref": function_id}]]
        }
        named[functions[function_id]] = group
    assert set(named) == set(functions.values()) == set(permissions.BASE)
    # Without monitoring: none of it.
    for kind in ("AWS::Logs::LogGroup", "AWS::CloudWatch::Alarm", "AWS::CloudWatch::Dashboard"):
        assert not of_type(default.template, kind), kind


def _dashboard_widgets(body: str) -> list[tuple[str, list[list[Any]]]]:
    return [
        (widget["properties"]["title"], [_plain(m) for m in widget["properties"]["metrics"]])
        for widget in json.loads(body)["widgets"]
    ]


def _plain(metric: list[Any]) -> list[Any]:
    """A dashboard metric as namespace, name, dimensions, and its stat and label."""
    *fields, options = metric
    return [*fields, options["stat"], options.get("label")]


def test_monitoring_builds_the_template_s_dashboard(monitored: Synth) -> None:
    stand_ins = {
        "AWS::Region": "REGION",
        "AWS::StackName": "Chat",
        "MetricsNamespace": "fanout",
        "Strategy": "sqs_batched",
        "WebSocketApi": "API",
        "StageName": "prod",
        "DeadLetterQueue": "DLQ",
    }
    [source] = of_type(_transformed(), "AWS::CloudWatch::Dashboard").values()
    expected = source["Properties"]["DashboardBody"]["Fn::Sub"]
    for name, value in stand_ins.items():
        expected = re.sub(r"\$\{" + re.escape(name) + r"(\.[A-Za-z]+)?\}", value, expected)
    [ours] = of_type(monitored.template, "AWS::CloudWatch::Dashboard").values()
    [dead_letter_id] = [
        n
        for n, q in of_type(monitored.template, "AWS::SQS::Queue").items()
        if "RedrivePolicy" not in q["Properties"]
    ]
    api_id = logical_id(monitored.construct.api)
    pieces = []
    for piece in ours["Properties"]["DashboardBody"]["Fn::Join"][1]:
        if isinstance(piece, str):
            pieces.append(piece)
        elif piece == {"Ref": "AWS::Region"}:
            pieces.append("REGION")
        elif piece == {"Ref": api_id}:
            pieces.append("API")
        else:
            assert piece == {"Fn::GetAtt": [dead_letter_id, "QueueName"]}, piece
            pieces.append("DLQ")
    assert _dashboard_widgets("".join(pieces)) == _dashboard_widgets(expected)
