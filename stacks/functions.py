"""The three functions with their roles, grants, event source and schedule.

IAM is written out action by action rather than with ``grant_read_write_data``: the CDK grant
methods add batch, scan and describe actions the handlers never call. Every grant is one row of
``GRANTS`` below (function -> resource -> actions); the handlers must stay within it.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_logs as logs

from flowcraft_core.aws.schema import PAYLOAD_BUCKET, TABLES
from flowcraft_core.environment import (
    FLOWCRAFT_APP,
    FLOWCRAFT_CONTEXT_TABLE,
    FLOWCRAFT_COORDINATION_TABLE,
    FLOWCRAFT_PAYLOAD_BUCKET,
    FLOWCRAFT_QUEUE_URL,
    FLOWCRAFT_RETENTION_DAYS,
    FLOWCRAFT_STALLED_SECONDS,
    FLOWCRAFT_STATUS_TABLE,
)

from .parts import StackParts, acknowledge, logical_id

#: Item actions on the context table (run heads and ``<runId>#n#<nodeKey>`` node items). A
#: ``TransactWriteItems`` is authorized item by item through PutItem, UpdateItem and
#: ConditionCheckItem, so transactions need no action of their own. No Scan, no DeleteItem.
#: A run's items: read in consistent batches, written by conditional puts and updates (the
#: transactions that commit a node with its context writes are made of updates).
CONTEXT_ACTIONS: tuple[str, ...] = (
    "dynamodb:BatchGetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
)
#: Resources a grant can name. Tables by their role in ``TABLES``; ``status/indexes`` is every
#: index of the status table (names from its spec); ``payloads`` the objects under the payload
#: bucket's key prefix; ``queue`` the job queue.
GRANT_RESOURCES: tuple[str, ...] = (
    "context",
    "status",
    "status/indexes",
    "coordination",
    "payloads",
    "queue",
)
#: Every permission the functions get, derived from the calls each one makes: function ->
#: resource -> actions. Adjust a grant here and nowhere else. ``SendMessage`` also authorizes
#: ``SendMessageBatch``. The worker's SQS event source adds what Lambda's poller needs on the
#: queue (ReceiveMessage, DeleteMessage, ChangeMessageVisibility, GetQueueAttributes,
#: GetQueueUrl); the worker itself changes visibility to hand messages back.
GRANTS: dict[str, dict[str, tuple[str, ...]]] = {
    "worker": {
        "context": CONTEXT_ACTIONS,
        # PutItem: a subflow node starts its child run.
        "status": ("dynamodb:PutItem", "dynamodb:UpdateItem"),
        "payloads": ("s3:GetObject", "s3:PutObject"),
        "queue": ("sqs:SendMessage", "sqs:ChangeMessageVisibility"),
    },
    "api": {
        "context": CONTEXT_ACTIONS,
        # Query: listing runs newest first (GET /runs) reads the status table and its indexes.
        "status": ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"),
        "status/indexes": ("dynamodb:Query",),
        "payloads": ("s3:GetObject", "s3:PutObject"),
        "queue": ("sqs:SendMessage",),
    },
    "reconciler": {
        "context": CONTEXT_ACTIONS,
        "status": ("dynamodb:UpdateItem",),
        "status/indexes": ("dynamodb:Query",),  # stalled runs from the active-runs index
        "coordination": ("dynamodb:PutItem", "dynamodb:DeleteItem"),  # the pass's lock
        "payloads": ("s3:GetObject",),
        "queue": ("sqs:SendMessage",),
    },
}

HANDLERS: dict[str, str] = {
    "worker": "handlers.worker.handler",
    "reconciler": "handlers.reconciler.handler",
    "api": "handlers.api.handler",
}
#: Reserved concurrency of the reconciler: one pass at a time, a late tick waits for the last.
RECONCILER_RESERVED_CONCURRENCY = 1
API_TIMEOUT_SECONDS = 15  # below API Gateway's 29 s integration limit
API_MEMORY_MB = 256
RECONCILER_TIMEOUT_SECONDS = 60
RECONCILER_MEMORY_MB = 256


class Functions(StackParts):
    """The three functions, their roles and grants, the worker's event source, the schedule."""

    def _environment(self) -> dict[str, str]:
        """The contract of ``handlers/config.py`` (README, "Settings"), same for all three."""
        return {
            FLOWCRAFT_QUEUE_URL: self.queue.queue_url,
            FLOWCRAFT_CONTEXT_TABLE: self.tables["context"].table_name,
            FLOWCRAFT_STATUS_TABLE: self.tables["status"].table_name,
            FLOWCRAFT_COORDINATION_TABLE: self.tables["coordination"].table_name,
            FLOWCRAFT_PAYLOAD_BUCKET: self.payload_bucket.bucket_name,
            FLOWCRAFT_RETENTION_DAYS: str(self.settings.retention_days),
            FLOWCRAFT_APP: "workflows",
            FLOWCRAFT_STALLED_SECONDS: str(self.settings.stalled_seconds),
            "POWERTOOLS_SERVICE_NAME": "flowcraft",
            "POWERTOOLS_METRICS_NAMESPACE": self.metrics_namespace,
            "POWERTOOLS_LOG_LEVEL": "INFO",
            "POWERTOOLS_TRACE_DISABLED": "false" if self.settings.tracing else "true",
        }

    def _function(
        self,
        role_name: str,
        code: lambda_.Code,
        timeout_seconds: int,
        memory_mb: int,
        *,
        retries: int | None = None,
        reserved: int,
    ) -> lambda_.Function:
        """A function with its own role, log group and reserved concurrency."""
        label = role_name.capitalize()
        log_group, role = self._log_group_and_role(role_name)
        function = lambda_.Function(
            self,
            f"{label}Function",
            function_name=f"{self.settings.prefix}-{role_name}",
            description=f"Flowcraft {role_name}",
            runtime=lambda_.Runtime.PYTHON_3_13,
            architecture=self._architecture(),
            handler=HANDLERS[role_name],
            code=code,
            timeout=Duration.seconds(timeout_seconds),
            memory_size=memory_mb,
            role=role,
            log_group=log_group,
            environment=self._environment(),
            tracing=lambda_.Tracing.ACTIVE if self.settings.tracing else None,
            retry_attempts=retries,
            reserved_concurrent_executions=(
                reserved if self.settings.reserved_concurrency else None
            ),
        )
        self._acknowledge_function(function, role)
        return function

    def _log_group_and_role(self, role_name: str) -> tuple[logs.LogGroup, iam.Role]:
        """A function's log group and a role that may write to it and nowhere else.

        The role is built here, not by ``lambda.Function``, so it gets write access to this
        one log group instead of the AWS-managed ``AWSLambdaBasicExecutionRole`` (which allows
        creating any log group in the account).
        """
        label = role_name.capitalize()
        log_group = logs.LogGroup(
            self,
            f"{label}Logs",
            retention=self.log_retention,
            removal_policy=self.removal_policy,
        )
        role = iam.Role(
            self,
            f"{label}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Flowcraft {role_name} function ({self.settings.prefix})",
        )
        log_group.grant_write(role)
        return log_group, role

    def _architecture(self) -> lambda_.Architecture:
        if self.settings.architecture == "arm64":
            return lambda_.Architecture.ARM_64
        return lambda_.Architecture.X86_64

    def _acknowledge_function(self, function: lambda_.Function, role: iam.Role) -> None:
        """The cdk-nag findings every function carries by design."""
        acknowledge(
            function,
            "AwsSolutions-L1",
            "Pinned to Python 3.13 on purpose: dependency wheels and precompiled bytecode are "
            "built for exactly this version; moving runtimes is a deliberate change.",
        )
        if self.settings.tracing:
            # X-Ray's PutTraceSegments/PutTelemetryRecords have no resource-level permissions.
            acknowledge(
                role,
                "AwsSolutions-IAM5[Resource::*]",
                "X-Ray trace upload actions do not support resource-level permissions.",
            )

    def grant_resources(self, name: str) -> list[str]:
        """The ARNs a ``GRANTS`` resource name stands for."""
        if name == "payloads":
            return [self.payload_bucket.arn_for_objects(f"{PAYLOAD_BUCKET.key_prefix}*")]
        if name == "queue":
            return [self.queue.queue_arn]
        if name.endswith("/indexes"):
            role = name.split("/", 1)[0]
            spec = next(spec for spec in TABLES if spec.role == role)
            arn = self.tables[role].table_arn
            return [f"{arn}/index/{index.name}" for index in spec.indexes]
        return [self.tables[name].table_arn]

    def _grant(self) -> None:
        """One statement per row of ``GRANTS``; nothing else reaches the functions' roles
        except their log groups and, for the worker, the event source's consume actions."""
        for role_name, rows in GRANTS.items():
            function = self.functions[role_name]
            for resource, actions in rows.items():
                resources = self.grant_resources(resource)
                if resources:  # a table without indexes has no index resources
                    function.add_to_role_policy(
                        iam.PolicyStatement(actions=list(actions), resources=resources)
                    )
            if "payloads" in rows:
                acknowledge(
                    function.role or function,
                    "AwsSolutions-IAM5[Resource::<"
                    + logical_id(self, self.payload_bucket)
                    + f".Arn>/{PAYLOAD_BUCKET.key_prefix}*]",
                    "Payload object keys are made at run time (runs/<runId>/...); the grant "
                    "is limited to the payload bucket's key prefix and object-level actions.",
                )

    def _wire_worker(self) -> None:
        window = self.settings.max_batching_window_seconds
        self.worker.add_event_source(
            event_sources.SqsEventSource(
                self.queue,
                batch_size=self.settings.batch_size,
                max_batching_window=Duration.seconds(window) if window else None,
                report_batch_item_failures=True,
                max_concurrency=self.settings.worker_max_concurrency,
            )
        )

    def _schedule_reconciler(self) -> None:
        """Every N minutes. A missed or failed tick is not retried: the next one does its work."""
        minutes = self.settings.reconciler_schedule_minutes
        events.Rule(
            self,
            "ReconcilerSchedule",
            description=f"Reconcile stalled Flowcraft runs ({self.settings.prefix})",
            schedule=events.Schedule.rate(Duration.minutes(minutes)),
            targets=[
                targets.LambdaFunction(
                    self.reconciler,
                    retry_attempts=0,
                    max_event_age=Duration.minutes(minutes),
                )
            ],
        )
