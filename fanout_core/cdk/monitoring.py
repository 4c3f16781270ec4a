"""The construct's alarms, log retention and dashboard: what template.yaml's do, in CDK.

``FanoutWebSocket(..., monitoring=Monitoring(...))`` builds them over the construct's
functions, queues and API (docs/operate.md says what each alarm means and what to do).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns

from fanout_core.deploy import permissions

if TYPE_CHECKING:
    from fanout_core.cdk.construct import FanoutWebSocket

FIVE_MINUTES = cdk.Duration.minutes(5)
MINUTE = cdk.Duration.minutes(1)
# The dashboard, as template.yaml's: (title, [(metric, statistic, label or None)]); each
# metric of the library's namespace under Service and Strategy, API Gateway's under the
# API and stage. "DeadLetterQueue" is the dead-letter queue's depth.
OURS = "ours"
API = "AWS/ApiGateway"
WIDGETS: tuple[tuple[str, tuple[tuple[str, str, str, str | None], ...]], ...] = (
    (
        "Posts",
        tuple(
            (OURS, name, "Sum", None)
            for name in ("Delivered", "Gone", "Throttled", "Retried", "Failed")
        ),
    ),
    (
        "Open connections",
        ((OURS, "OpenConnections", "Maximum", None), (API, "ConnectCount", "Sum", None)),
    ),
    (
        "Fan-out time and post latency (ms)",
        tuple(
            (OURS, name, stat, f"{name} {stat}")
            for name in ("FanoutTime", "PostLatency")
            for stat in ("p50", "p99")
        ),
    ),
    (
        "Audience size",
        (
            (OURS, "AudienceSize", "p50", "AudienceSize p50"),
            (OURS, "AudienceSize", "Maximum", "AudienceSize max"),
        ),
    ),
    (
        "API Gateway",
        tuple(
            (API, name, "Sum", None) for name in ("ConnectCount", "MessageCount", "ExecutionError")
        ),
    ),
    (
        "API Gateway integration latency (ms)",
        ((API, "IntegrationLatency", "p50", None), (API, "IntegrationLatency", "p99", None)),
    ),
    ("Connections", ((OURS, "Connects", "Sum", None), (OURS, "Disconnects", "Sum", None))),
    (
        "DynamoDB capacity units",
        ((OURS, "ReadUnits", "Sum", None), (OURS, "WriteUnits", "Sum", None)),
    ),
    (
        "Refused and history",
        tuple(
            (OURS, name, "Sum", None)
            for name in (
                "Denied",
                "RateLimited",
                "ClientErrors",
                "Errors",
                "Duplicates",
                "HistoryFrames",
            )
        ),
    ),
    (
        "SQS worker",
        (
            (OURS, "WorkerTasks", "Sum", None),
            (OURS, "Requeued", "Sum", None),
            ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", "dead-letter queue"),
        ),
    ),
)


@dataclass(frozen=True)
class Monitoring:
    """What to build: every alarm notifies ``alarm_topic`` (None: no one) on alarm and on
    recovery; each function's log group keeps ``log_retention``; ``dashboard``: the
    CloudWatch dashboard of the fan-outs beside API Gateway's metrics."""

    alarm_topic: sns.ITopic | None = None
    log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH
    dashboard: bool = True


@dataclass(frozen=True)
class Monitored:
    """What ``monitor`` built."""

    log_groups: dict[str, logs.LogGroup]
    alarms: dict[str, cloudwatch.Alarm]
    dashboard: cloudwatch.Dashboard | None


def monitor(fanout: FanoutWebSocket, monitoring: Monitoring) -> Monitored:
    """Log groups for every function of ``fanout``, its alarms and (if asked) its dashboard."""
    log_groups = {
        handler: logs.LogGroup(
            fanout,
            f"{function.node.id.removesuffix('Function')}LogGroup",  # ConnectLogGroup, ...
            # Lambda's own name for it: made here first, with a retention.
            log_group_name=f"/aws/lambda/{function.function_name}",
            retention=monitoring.log_retention,
            removal_policy=fanout.removal_policy,
        )
        for handler, function in fanout.functions.items()
    }
    alarms = _alarms(fanout)
    if monitoring.alarm_topic is not None:
        action = actions.SnsAction(monitoring.alarm_topic)
        for alarm in alarms.values():
            alarm.add_alarm_action(action)
            alarm.add_ok_action(action)
    dashboard = _dashboard(fanout) if monitoring.dashboard else None
    return Monitored(log_groups, alarms, dashboard)


def _ours(
    fanout: FanoutWebSocket,
    name: str,
    statistic: str,
    period: cdk.Duration,
    label: str | None = None,
    **dimensions: str,
) -> cloudwatch.Metric:
    """A metric the functions write: under Service and Strategy, as every one of them."""
    return cloudwatch.Metric(
        namespace=fanout.settings.metrics_namespace,
        metric_name=name,
        dimensions_map={
            "Service": fanout.service,
            "Strategy": fanout.settings.strategy,
            **dimensions,
        },
        statistic=statistic,
        period=period,
        label=label,
    )


def _alarms(fanout: FanoutWebSocket) -> dict[str, cloudwatch.Alarm]:
    functions = fanout.functions
    made: dict[str, cloudwatch.Alarm] = {}

    def alarm(name: str, description: str, metric: cloudwatch.IMetric, periods: int = 1) -> None:
        made[name] = cloudwatch.Alarm(
            fanout,
            name,
            metric=metric,
            threshold=0,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=periods,
            datapoints_to_alarm=periods if periods > 1 else None,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )

    if fanout.dead_letter_queue is not None:
        alarm(
            "DeadLetterQueueAlarm",
            "The dead-letter queue holds fan-out batches that failed 5 times.",
            fanout.dead_letter_queue.metric_approximate_number_of_messages_visible(
                statistic="Maximum", period=FIVE_MINUTES
            ),
        )
    worker = functions.get(permissions.WORKER)
    if worker is not None:
        alarm(
            "WorkerErrorsAlarm",
            "The SQS worker crashed, timed out, was throttled or failed records.",
            cloudwatch.MathExpression(
                expression="FILL(crashed, 0) + FILL(throttled, 0) + FILL(failed, 0)",
                label="worker errors",
                period=FIVE_MINUTES,
                using_metrics={
                    "crashed": worker.metric_errors(statistic="Sum", period=FIVE_MINUTES),
                    "throttled": worker.metric_throttles(statistic="Sum", period=FIVE_MINUTES),
                    "failed": _ours(
                        fanout, "Errors", "Sum", FIVE_MINUTES, Source=permissions.WORKER
                    ),
                },
            ),
        )
    # Every function a client's request runs (at most 10 metrics in an alarm: 9 routes).
    routes = {
        handler.replace("_", ""): functions[handler]
        for handler in (*permissions.ROUTES.values(), permissions.WEBSOCKET)
        if handler in functions
    }
    alarm(
        "ThrottlesAlarm",
        "A route function was throttled (the account's or its concurrency limit).",
        cloudwatch.MathExpression(
            expression=" + ".join(f"FILL({name}, 0)" for name in routes),
            label="throttles",
            period=FIVE_MINUTES,
            using_metrics={
                name: function.metric_throttles(statistic="Sum", period=FIVE_MINUTES)
                for name, function in routes.items()
            },
        ),
    )
    authorizer = functions.get(permissions.AUTHORIZER)
    if authorizer is not None:
        alarm(
            "AuthorizerThrottlesAlarm",
            "The $connect authorizer was throttled: connects are refused.",
            authorizer.metric_throttles(statistic="Sum", period=FIVE_MINUTES),
        )
    alarm(
        "FailedAlarm",
        "Posts have failed every minute for 5 minutes.",
        _ours(fanout, "Failed", "Sum", MINUTE),
        periods=5,
    )
    alarm(
        "ThrottledAlarm",
        "The Management API has answered 429 for 15 minutes in a row.",
        _ours(fanout, "Throttled", "Sum", FIVE_MINUTES),
        periods=3,
    )
    return made


def _dashboard(fanout: FanoutWebSocket) -> cloudwatch.Dashboard:
    graphs = []
    for title, shown in WIDGETS:
        metrics: list[cloudwatch.IMetric] = []
        for namespace, name, statistic, label in shown:
            if namespace == OURS:
                metrics.append(_ours(fanout, name, statistic, MINUTE, label))
            elif namespace == API:
                metrics.append(
                    cloudwatch.Metric(
                        namespace=API,
                        metric_name=name,
                        dimensions_map={"ApiId": fanout.api.api_id, "Stage": fanout.stage_name},
                        statistic=statistic,
                        period=MINUTE,
                        label=label,
                    )
                )
            elif fanout.dead_letter_queue is not None:  # no worker: no queue to show
                metrics.append(
                    fanout.dead_letter_queue.metric_approximate_number_of_messages_visible(
                        statistic=statistic, period=MINUTE, label=label
                    )
                )
        graphs.append(
            cloudwatch.GraphWidget(
                title=title,
                left=metrics,
                width=12,
                height=6,
                period=MINUTE,
                view=cloudwatch.GraphWidgetView.TIME_SERIES,
                stacked=False,
            )
        )
    rows = [graphs[i : i + 2] for i in range(0, len(graphs), 2)]
    return cloudwatch.Dashboard(fanout, "Dashboard", widgets=rows)
