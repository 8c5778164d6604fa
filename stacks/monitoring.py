"""Monitoring: the alarm topic, alarms on every part, and the dashboard."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions

from .parts import StackParts, acknowledge

#: The worker-duration alarm fires when an invocation uses this share of the timeout.
WORKER_DURATION_ALARM_RATIO = 0.8


class Monitoring(StackParts):
    """The alarm topic, the alarms and the dashboard."""

    def _alarm_topic(self) -> sns.ITopic:
        """Where every alarm goes: the given ``alarmTopicArn``, or a topic of this stack.

        Alarm notifications carry alarm names and metric values, no run data; CloudWatch can
        only publish to an encrypted topic through a customer-managed KMS key whose policy
        trusts it, so the topic is not encrypted (see the acknowledgement).
        """
        settings = self.settings
        if settings.alarm_topic_arn:
            topic = sns.Topic.from_topic_arn(self, "AlarmTopic", settings.alarm_topic_arn)
        else:
            created = sns.Topic(
                self,
                "AlarmTopic",
                topic_name=f"{settings.prefix}-alarms",
                display_name=f"Flowcraft alarms ({settings.prefix})",
                enforce_ssl=True,
            )
            acknowledge(
                created,
                "AwsSolutions-SNS2",
                "Alarm notifications hold alarm names and metric values only. CloudWatch "
                "alarms cannot publish to a topic encrypted with the AWS-managed SNS key, and a "
                "customer-managed key per stack costs more than the data is worth protecting.",
            )
            topic = created
        if settings.alarm_email:
            topic.add_subscription(subscriptions.EmailSubscription(settings.alarm_email))
        return topic

    def _alarm(
        self,
        construct_id: str,
        name: str,
        description: str,
        metric: cloudwatch.IMetric,
        threshold: float,
        *,
        evaluation_periods: int = 1,
    ) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            alarm_name=f"{self.settings.prefix}-{name}",
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=evaluation_periods,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        action = cloudwatch_actions.SnsAction(self.alarm_topic)
        alarm.add_alarm_action(action)
        alarm.add_ok_action(action)
        return alarm

    def _alarms(self) -> list[cloudwatch.Alarm]:
        """Every alarm notifies the alarm topic, when it fires and when it clears.

        The order is the dashboard's alarm-status order: jobs, then the API, then capacity.
        """
        return [*self._job_alarms(), *self._api_alarms(), *self._capacity_alarms()]

    def _job_alarms(self) -> list[cloudwatch.Alarm]:
        """Jobs that failed for good, failed invocations, a backlog, a failing reconciler."""
        minute = Duration.minutes(1)
        five_minutes = Duration.minutes(5)
        oldest_seconds = self.settings.oldest_message_alarm_seconds
        return [
            self._alarm(
                "DeadLetterQueueNotEmpty",
                "dlq-not-empty",
                "Jobs exhausted their retries and wait in the dead-letter queue",
                self.dead_letter_queue.metric_approximate_number_of_messages_visible(
                    period=minute, statistic="Maximum"
                ),
                0,
            ),
            self._alarm(
                "WorkerErrors",
                "worker-errors",
                "Worker invocations failed as a whole (crash or timeout); single failed jobs "
                "are reported per message and do not count",
                self.worker.metric_errors(period=five_minutes, statistic="Sum"),
                0,
            ),
            self._alarm(
                "OldestJobAge",
                "oldest-job-age",
                f"Jobs wait in the queue longer than {oldest_seconds} s: "
                "workers are behind or failing",
                self.queue.metric_approximate_age_of_oldest_message(
                    period=five_minutes, statistic="Maximum"
                ),
                oldest_seconds,
            ),
            self._alarm(
                "ReconcilerErrors",
                "reconciler-errors",
                "The reconciler failed: stalled runs are not being resumed",
                self.reconciler.metric_errors(period=five_minutes, statistic="Sum"),
                0,
            ),
        ]

    def _api_alarms(self) -> list[cloudwatch.Alarm]:
        five_minutes = Duration.minutes(5)
        latency_ms = self.settings.api_latency_alarm_ms
        return [
            self._alarm(
                "ApiServerErrors",
                "api-5xx",
                "The API answered 5XX: the function failed or timed out, or API Gateway did",
                self.api.metric_server_error(period=five_minutes, statistic="Sum"),
                0,
            ),
            self._alarm(
                "ApiLatency",
                "api-latency",
                f"API p90 latency above {latency_ms} ms for 15 minutes",
                self.api.metric_latency(period=five_minutes, statistic="p90"),
                latency_ms,
                evaluation_periods=3,
            ),
        ]

    def _capacity_alarms(self) -> list[cloudwatch.Alarm]:
        """Limits about to bite: a worker close to its timeout, any function throttled."""
        five_minutes = Duration.minutes(5)
        timeout_seconds = self.settings.worker_timeout_seconds
        near_timeout_ms = int(timeout_seconds * 1000 * WORKER_DURATION_ALARM_RATIO)
        alarms = [
            self._alarm(
                "WorkerNearTimeout",
                "worker-near-timeout",
                f"A worker invocation ran longer than {near_timeout_ms} ms "
                f"({WORKER_DURATION_ALARM_RATIO:.0%} of its {timeout_seconds} s "
                "timeout): raise the timeout or make nodes shorter before invocations time out",
                self.worker.metric_duration(period=five_minutes, statistic="Maximum"),
                near_timeout_ms,
            )
        ]
        for role_name, function in self.functions.items():
            alarms.append(
                self._alarm(
                    f"{role_name.capitalize()}Throttles",
                    f"{role_name}-throttles",
                    f"The {role_name} function was throttled: its reserved concurrency or the "
                    "account's concurrency is exhausted",
                    function.metric_throttles(period=five_minutes, statistic="Sum"),
                    0,
                )
            )
        return alarms

    def _emf_metric(self, name: str, label: str, statistic: str = "Sum") -> cloudwatch.Metric:
        """A metric the handlers emit in EMF (Powertools adds the ``service`` dimension)."""
        return cloudwatch.Metric(
            namespace=self.metrics_namespace,
            metric_name=name,
            dimensions_map={"service": "flowcraft"},
            statistic=statistic,
            period=Duration.minutes(1),
            label=label,
        )

    def _dashboard(self) -> cloudwatch.Dashboard:
        """One row of alarm states, then one row each for runs, the queue, the functions and
        the API with the reconciler."""
        dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=f"{self.settings.prefix}-dashboard"
        )
        dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(alarms=list(self.alarms), width=24, height=4),
        )
        dashboard.add_widgets(*self._run_graphs())
        dashboard.add_widgets(*self._queue_graphs())
        dashboard.add_widgets(*self._function_graphs())
        dashboard.add_widgets(*self._api_graphs())
        return dashboard

    def _run_graphs(self) -> list[cloudwatch.GraphWidget]:
        """The engine's own figures: runs, nodes and node duration."""
        return [
            _graph(
                "Runs per minute",
                self.runs_started,
                self._emf_metric("RunsCompleted", "Runs completed"),
                self._emf_metric("RunsFailed", "Runs failed"),
            ),
            _graph(
                "Nodes per minute",
                self._emf_metric("NodesExecuted", "Nodes executed"),
                self._emf_metric("NodeFailures", "Node failures"),
                self._emf_metric("Retries", "Retries"),
            ),
            _graph(
                "Node duration (ms)",
                self._emf_metric("NodeDuration", "p50", statistic="p50"),
                self._emf_metric("NodeDuration", "p99", statistic="p99"),
            ),
        ]

    def _queue_graphs(self) -> list[cloudwatch.GraphWidget]:
        minute = Duration.minutes(1)
        return [
            _graph(
                "Job queue depth",
                self.queue.metric_approximate_number_of_messages_visible(
                    period=minute, label="Visible"
                ),
                self.queue.metric_approximate_number_of_messages_not_visible(
                    period=minute, label="In flight"
                ),
            ),
            _graph(
                "Oldest job age (s)",
                self.queue.metric_approximate_age_of_oldest_message(period=minute),
            ),
            _graph(
                "Dead-letter queue depth",
                self.dead_letter_queue.metric_approximate_number_of_messages_visible(
                    period=minute, label="Dead letters"
                ),
            ),
        ]

    def _function_graphs(self) -> list[cloudwatch.GraphWidget]:
        """Errors, p99 duration and throttles, one line per function."""
        minute = Duration.minutes(1)
        functions = self.functions.items()
        return [
            _graph(
                "Lambda errors",
                *(f.metric_errors(period=minute, label=name) for name, f in functions),
            ),
            _graph(
                "Lambda duration p99 (ms)",
                *(
                    f.metric_duration(period=minute, statistic="p99", label=name)
                    for name, f in functions
                ),
            ),
            _graph(
                "Lambda throttles",
                *(f.metric_throttles(period=minute, label=name) for name, f in functions),
            ),
        ]

    def _api_graphs(self) -> list[cloudwatch.GraphWidget]:
        """The API's requests and latency, and the reconciler's passes beside them."""
        minute = Duration.minutes(1)
        return [
            _graph(
                "API requests",
                self.api.metric_count(period=minute, label="Requests"),
                self.api.metric_client_error(period=minute, label="4XX"),
                self.api.metric_server_error(period=minute, label="5XX"),
            ),
            _graph(
                "API latency (ms)",
                self.api.metric_latency(period=minute, statistic="p50", label="p50"),
                self.api.metric_latency(period=minute, statistic="p99", label="p99"),
                self.api.metric_integration_latency(
                    period=minute, statistic="p99", label="integration p99"
                ),
            ),
            _graph(
                "Reconciler",
                self._emf_metric("StalledRuns", "Stalled runs"),
                self._emf_metric("ReconciledRuns", "Reconciled runs"),
                self._emf_metric("ReconcileFailures", "Failures"),
            ),
        ]


def _graph(title: str, *metrics: cloudwatch.IMetric, width: int = 8) -> cloudwatch.GraphWidget:
    return cloudwatch.GraphWidget(title=title, left=list(metrics), width=width)
