"""FanoutWebSocket: the table, the handlers, the routes, the worker and the sweep, in CDK.

It builds what template.yaml builds, from the same description of what each function may
call (``fanout_core.deploy.permissions``), so the two grant the same IAM statements. The code
is what ``python -m fanout_core.deploy.package`` builds (``code=``).

Sign-in: ``sign_in=SignIn(...)`` builds the library's ``$connect`` authorizer, as the
template's ``AuthMode`` does; ``connect_authorizer`` takes one of your own instead.
``monitoring=Monitoring(...)`` adds the template's log retention, alarms and dashboard
(``fanout_core.cdk.monitoring``). More functions hang on ``add_function`` and ``grant_publish``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import aws_cdk as cdk
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from fanout_core.cdk.monitoring import Monitored, Monitoring, monitor
from fanout_core.cdk.settings import FanoutSettings
from fanout_core.cdk.signin import SignIn
from fanout_core.deploy import permissions

INDEX = "audience"
ROUTE_TIMEOUT = cdk.Duration.seconds(29)  # API Gateway waits at most 29 s for a route


@dataclass(frozen=True)
class WorkerOptions:
    """sqs_batched's queue and its worker: the most invocations at once, and its timeout."""

    max_concurrency: int = 10  # the event source mapping's cap (2 to 1000)
    timeout_seconds: int = 60  # the queue's visibility timeout is 6 times this
    batch_size: int = 10

    def __post_init__(self) -> None:
        # AWS's ranges: MaximumConcurrency, Lambda's timeout (and 6 times it within SQS's
        # 12-hour visibility timeout), an SQS batch without a batching window.
        for name, value, low, high in (
            ("max_concurrency", self.max_concurrency, 2, 1000),
            ("timeout_seconds", self.timeout_seconds, 1, 900),
            ("batch_size", self.batch_size, 1, 10),
        ):
            if not low <= value <= high:
                raise ValueError(f"WorkerOptions.{name}: {low} to {high}, not {value}")


def _camel(handler: str) -> str:
    return "".join(part.capitalize() for part in handler.split("_"))


class FanoutWebSocket(Construct):
    """A WebSocket API whose routes run fanout-core's handlers, with its table.

    ``functions``: ``"per_route"`` (one function per route, each with its own least-privilege
    role) or ``"single"`` (``fanout_core.handlers.websocket`` for every route). ``worker``:
    the SQS queue and worker; on by default when the strategy is ``sqs_batched``, which needs
    it. ``sweep_schedule``: when the sweep runs (None: no sweep). ``open_connections``: the
    function that counts live connections every 5 minutes (the ``OpenConnections`` metric).
    ``http_publish``: ``publish_http`` behind a Function URL with IAM auth (``publish_url``);
    ``event_pattern``: an EventBridge rule on the default bus invoking ``publish_events``.
    Every function's metrics go under the ``Service`` ``service`` (default: the stack's name).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        code: lambda_.Code,
        settings: FanoutSettings | None = None,
        functions: Literal["per_route", "single"] = "per_route",
        worker: WorkerOptions | bool | None = None,
        sweep_schedule: events.Schedule | None = None,
        sweep: bool = True,
        open_connections: bool = True,
        stage_name: str = "prod",
        runtime: lambda_.Runtime | None = None,
        architecture: lambda_.Architecture | None = None,
        memory_size: int = 256,
        connect_authorizer: apigwv2.IWebSocketRouteAuthorizer | None = None,
        sign_in: SignIn | None = None,
        http_publish: bool = False,
        event_pattern: events.EventPattern | None = None,
        monitoring: Monitoring | None = None,
        service: str | None = None,
        removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.DESTROY,
    ) -> None:
        super().__init__(scope, construct_id)
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,128}", stage_name):
            raise ValueError(f"stage_name: 1-128 of A-Z a-z 0-9 _ -, not {stage_name!r}")
        self.settings = settings or FanoutSettings()
        if worker is None:
            worker = self.settings.strategy == "sqs_batched"
        if worker is False and self.settings.strategy == "sqs_batched":
            raise ValueError("strategy sqs_batched needs the worker: leave worker on")
        self._code = code
        self._runtime = runtime or lambda_.Runtime.PYTHON_3_12
        self._architecture = architecture or lambda_.Architecture.X86_64
        self._memory_size = memory_size
        self.stage_name = stage_name
        self.removal_policy = removal_policy
        # The metrics' Service dimension: as the template's, the stack's name by default.
        self.service = service or cdk.Stack.of(self).stack_name
        self.functions: dict[str, lambda_.Function] = {}

        self.table = self._table(removal_policy)
        self.dead_letter_queue: sqs.Queue | None = None
        self.queue: sqs.Queue | None = None
        options = WorkerOptions() if worker is True else worker or None
        if options is not None:
            self.dead_letter_queue, self.queue = self._queues(options, removal_policy)
        self.environment = {
            "FANOUT_TABLE": self.table.table_name,
            **self.settings.environment(),
            **({"FANOUT_QUEUE_URL": self.queue.queue_url} if self.queue else {}),
            "FANOUT_SERVICE": self.service,
        }
        self.api = apigwv2.WebSocketApi(
            self,
            "Api",
            route_selection_expression=permissions.ROUTE_SELECTION_EXPRESSION,
        )
        self.stage = apigwv2.WebSocketStage(
            self, "Stage", web_socket_api=self.api, stage_name=stage_name, auto_deploy=True
        )
        if sign_in is not None:
            if connect_authorizer is not None:
                raise ValueError("sign_in builds the $connect authorizer: drop connect_authorizer")
            connect_authorizer = self._sign_in(sign_in)
        self._routes(functions, connect_authorizer)
        if options is not None:
            self._worker(options)
        if sweep:
            schedule = sweep_schedule or events.Schedule.rate(cdk.Duration.hours(1))
            self._scheduled("Sweep", permissions.SWEEP, schedule)
        if open_connections:
            five_minutes = events.Schedule.rate(cdk.Duration.minutes(5))
            self._scheduled("OpenConnections", permissions.GAUGE, five_minutes)
        self.publish_url: lambda_.FunctionUrl | None = None
        if http_publish:
            publisher = self._publisher("PublishHttp", "publish_http")
            self.publish_url = publisher.add_function_url(
                auth_type=lambda_.FunctionUrlAuthType.AWS_IAM
            )
        if event_pattern is not None:
            publisher = self._publisher("PublishEvents", "publish_events")
            events.Rule(
                self,
                "PublishEventsRule",
                event_pattern=event_pattern,
                targets=[targets.LambdaFunction(publisher)],
            )
        # Last: over every function made above.
        self.monitored: Monitored | None = monitor(self, monitoring) if monitoring else None

    # -- attributes ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Where clients connect: ``wss://{api}.execute-api.{region}.amazonaws.com/{stage}``."""
        return self.stage.url

    @property
    def callback_url(self) -> str:
        """The stage's Management API endpoint (``https://``)."""
        return self.stage.callback_url

    def arn_of(self, name: str) -> str:
        """The ARN a permissions resource name stands for (``table``, ``index`` ...)."""
        stack = cdk.Stack.of(self)

        def connections(method: str) -> str:
            return stack.format_arn(
                service="execute-api",
                resource=self.api.api_id,
                resource_name=f"{self.stage_name}/{method}/@connections/*",
                arn_format=cdk.ArnFormat.SLASH_RESOURCE_NAME,
            )

        if name == "table":
            return self.table.table_arn
        if name == "index":
            return f"{self.table.table_arn}/index/{INDEX}"
        if name == "queue" and self.queue is not None:
            return self.queue.queue_arn
        if name == "connections":
            return connections("POST")
        if name == "disconnections":
            return connections("DELETE")
        raise ValueError(f"no resource {name!r} in this construct")

    # -- grants --------------------------------------------------------------------------

    def statements(self, grant: permissions.Grant) -> list[iam.PolicyStatement]:
        """``grant`` as Allow statements on this construct's resources (no queue: none on it)."""
        if self.queue is None:
            grant = {a: r - {"queue"} for a, r in grant.items() if r - {"queue"}}
        made = []
        for actions, names, leading_keys in permissions.statements(grant):
            conditions = (
                {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [leading_keys]}}
                if leading_keys
                else None
            )
            made.append(
                iam.PolicyStatement(
                    actions=list(actions),
                    resources=[self.arn_of(n) for n in names],
                    conditions=conditions,
                )
            )
        return made

    def grant_publish(self, grantee: iam.IGrantable) -> None:
        """Let ``grantee`` publish with ``fanout_core.Fanout``: exactly PublisherPolicy's
        statements and, for a function, the variables it reads."""
        for statement in self.statements(permissions.PUBLISHER):
            grantee.grant_principal.add_to_principal_policy(statement)
        if isinstance(grantee, lambda_.Function):
            for name, value in self.environment.items():
                grantee.add_environment(name, value)

    def add_function(
        self, name: str, handler: str, grant: permissions.Grant, *, timeout: cdk.Duration
    ) -> lambda_.Function:
        """A function of this construct's code running ``fanout_core.handlers.<handler>``,
        with the environment and exactly ``grant``."""
        function = lambda_.Function(
            self,
            f"{name}Function",
            runtime=self._runtime,
            architecture=self._architecture,
            code=self._code,
            handler=f"{permissions.HANDLER_MODULE}.{handler}",
            memory_size=self._memory_size,
            timeout=timeout,
            environment=self.environment,
        )
        for statement in self.statements(grant):
            function.add_to_role_policy(statement)
        self.functions[handler] = function
        return function

    # -- parts ---------------------------------------------------------------------------

    def _table(self, removal_policy: cdk.RemovalPolicy) -> dynamodb.Table:
        # Exactly what `fanout table create` makes (tests/test_cdk.py compares them).
        string = dynamodb.AttributeType.STRING
        table = dynamodb.Table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name="pk", type=string),
            sort_key=dynamodb.Attribute(name="sk", type=string),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute="expires_at",
            removal_policy=removal_policy,
        )
        table.add_global_secondary_index(
            index_name=INDEX,
            partition_key=dynamodb.Attribute(name="gsi1pk", type=string),
            sort_key=dynamodb.Attribute(name="gsi1sk", type=string),
            projection_type=dynamodb.ProjectionType.INCLUDE,
            non_key_attributes=["type", "connection_id", "endpoint", "expires_at"],
        )
        return table

    def _queues(
        self, options: WorkerOptions, removal_policy: cdk.RemovalPolicy
    ) -> tuple[sqs.Queue, sqs.Queue]:
        # The dead-letter queue keeps a message's age: it must keep messages longer.
        dead_letter = sqs.Queue(
            self,
            "DeadLetterQueue",
            retention_period=cdk.Duration.days(14),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            removal_policy=removal_policy,
        )
        queue = sqs.Queue(
            self,
            "Queue",
            retention_period=cdk.Duration.days(1),  # a fan-out a day late is of no use
            visibility_timeout=cdk.Duration.seconds(6 * options.timeout_seconds),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            dead_letter_queue=sqs.DeadLetterQueue(queue=dead_letter, max_receive_count=5),
            removal_policy=removal_policy,
        )
        return dead_letter, queue

    def _grant(self, handler: str) -> permissions.Grant:
        return permissions.grants(
            presence_events=self.settings.presence_events,
            rate_limit=bool(self.settings.rate_limit),
            history=self.settings.history_seconds > 0,
            user_rate_limit=bool(self.settings.user_rate_limit),
            max_connections=self.settings.max_connections_per_user > 0,
        )[handler]

    def _routes(
        self,
        functions: Literal["per_route", "single"],
        connect_authorizer: apigwv2.IWebSocketRouteAuthorizer | None,
    ) -> None:
        shared = None
        if functions == "single":
            union = permissions.merged(*(self._grant(h) for h in permissions.ROUTES.values()))
            shared = self.add_function(
                "WebSocket", permissions.WEBSOCKET, union, timeout=ROUTE_TIMEOUT
            )
        elif functions != "per_route":
            raise ValueError(f"functions: 'per_route' or 'single', not {functions!r}")
        routes = []
        for key, handler in permissions.ROUTES.items():
            name = _camel(handler)
            function = shared or self.add_function(
                name, handler, self._grant(handler), timeout=ROUTE_TIMEOUT
            )
            routes.append(
                self.api.add_route(
                    key,
                    integration=integrations.WebSocketLambdaIntegration(
                        f"{name}Integration", function
                    ),
                    authorizer=connect_authorizer if key == "$connect" else None,
                    # Without a route response API Gateway drops the handler's error body.
                    return_response=key not in permissions.ONE_WAY_ROUTES or None,
                )
            )
        for route in routes:  # the first deployment already has every route
            self.stage.node.add_dependency(route)

    def _sign_in(self, sign_in: SignIn) -> apigwv2.IWebSocketRouteAuthorizer:
        """The authorizer's function (its own variables, no statement: it calls no AWS
        service) and the REQUEST authorizer API Gateway calls on $connect."""
        function = lambda_.Function(
            self,
            "AuthorizerFunction",
            runtime=self._runtime,
            architecture=self._architecture,
            code=sign_in.code or self._code,
            handler=f"{permissions.HANDLER_MODULE}.{permissions.AUTHORIZER}",
            memory_size=self._memory_size,
            timeout=cdk.Duration.seconds(10),  # the key set's fetch times out after 2 s
            environment=sign_in.environment(),
        )
        for statement in self.statements(permissions.BASE[permissions.AUTHORIZER]):
            function.add_to_role_policy(statement)
        self.functions[permissions.AUTHORIZER] = function
        return authorizers.WebSocketLambdaAuthorizer(
            "ConnectAuthorizer", function, identity_source=sign_in.identity_source
        )

    def _worker(self, options: WorkerOptions) -> None:
        assert self.queue is not None
        worker = self.add_function(
            "SqsWorker",
            permissions.WORKER,
            self._grant(permissions.WORKER),
            timeout=cdk.Duration.seconds(options.timeout_seconds),
        )
        # A mapping, not SqsEventSource: that one grants more than the worker calls. A cap on
        # the mapping rather than reserved concurrency: a throttled invocation would count
        # toward maxReceiveCount and send work to the dead-letter queue.
        lambda_.EventSourceMapping(
            self,
            "SqsWorkerBatches",
            target=worker,
            event_source_arn=self.queue.queue_arn,
            batch_size=options.batch_size,
            report_batch_item_failures=True,
            max_concurrency=options.max_concurrency,
        )

    def _publisher(self, name: str, handler: str) -> lambda_.Function:
        """``publish_http`` or ``publish_events``: what ``Fanout.publish`` calls."""
        return self.add_function(name, handler, permissions.PUBLISH, timeout=ROUTE_TIMEOUT)

    def _scheduled(self, name: str, handler: str, schedule: events.Schedule) -> None:
        function = self.add_function(
            name, handler, self._grant(handler), timeout=cdk.Duration.seconds(300)
        )
        events.Rule(
            self, f"{name}Schedule", schedule=schedule, targets=[targets.LambdaFunction(function)]
        )
