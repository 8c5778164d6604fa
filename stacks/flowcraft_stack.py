"""The Flowcraft stack: job queue, tables, payload bucket, three functions, REST API, alarms,
dashboard.

Infrastructure only, assembled from one part per concern (``storage``, ``functions``,
``rest_api``, ``monitoring``). Every name carries the settings' prefix, so two copies
(``flowcraft`` and ``flowcraft-staging``) deploy side by side in one account.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import Aws, CfnOutput, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from flowcraft_core.aws.schema import TABLES
from flowcraft_core.environment import (
    FLOWCRAFT_CONTEXT_TABLE,
    FLOWCRAFT_COORDINATION_TABLE,
    FLOWCRAFT_PAYLOAD_BUCKET,
    FLOWCRAFT_QUEUE_URL,
    FLOWCRAFT_STATUS_TABLE,
    FLOWCRAFT_WEBHOOK_BASE_URL,
)

from .bundling import BundleSpec, lambda_code
from .functions import (
    API_MEMORY_MB,
    API_TIMEOUT_SECONDS,
    RECONCILER_MEMORY_MB,
    RECONCILER_RESERVED_CONCURRENCY,
    RECONCILER_TIMEOUT_SECONDS,
    Functions,
)
from .monitoring import Monitoring
from .parts import RETENTION
from .rest_api import RestApi
from .settings import Settings
from .storage import Storage


class FlowcraftStack(Storage, Functions, RestApi, Monitoring):
    """All of Flowcraft's AWS resources for one prefix."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: Settings,
        project_root: Path,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            stack_name=settings.resolved_stack_name,
            description=f"Flowcraft workflow engine ({settings.prefix})",
            **kwargs,
        )
        self.settings = settings
        self.removal_policy = (
            RemovalPolicy.DESTROY if settings.removal_policy == "destroy" else RemovalPolicy.RETAIN
        )
        self.log_retention = RETENTION[settings.log_retention_days]
        self._build_storage()
        self._build_functions(project_root)
        self._build_api()
        self._build_monitoring()
        self._outputs()

    def _build_storage(self) -> None:
        """The tables, the payload bucket and the job queue with its DLQ."""
        self.tables: dict[str, dynamodb.Table] = {spec.role: self._table(spec) for spec in TABLES}
        self.payload_bucket = self._payload_bucket()
        self.dead_letter_queue, self.queue = self._queues()

    def _build_functions(self, project_root: Path) -> None:
        """The three functions on one shared asset, then their grants, event source, schedule."""
        settings = self.settings
        code = lambda_code(
            BundleSpec(
                project_root=project_root,
                platform=settings.pip_platform,
                bundle_dependencies=settings.bundle_dependencies,
            )
        )
        self.worker = self._function(
            "worker",
            code,
            settings.worker_timeout_seconds,
            settings.worker_memory_mb,
            reserved=settings.resolved_worker_reserved_concurrency,
        )
        self.reconciler = self._function(
            "reconciler",
            code,
            RECONCILER_TIMEOUT_SECONDS,
            RECONCILER_MEMORY_MB,
            retries=0,
            reserved=RECONCILER_RESERVED_CONCURRENCY,
        )
        self.api_function = self._function(
            "api",
            code,
            API_TIMEOUT_SECONDS,
            API_MEMORY_MB,
            reserved=settings.api_reserved_concurrency,
        )
        self.functions = {
            "worker": self.worker,
            "reconciler": self.reconciler,
            "api": self.api_function,
        }
        self._grant()
        self._wire_worker()
        self._schedule_reconciler()

    def _build_api(self) -> None:
        self.api = self._rest_api()
        # Webhook nodes hand out URLs under the API (the route needs no AWS signature).
        self.worker.add_environment(FLOWCRAFT_WEBHOOK_BASE_URL, self.api.url)

    def _build_monitoring(self) -> None:
        """The alarm topic, the alarms and, when the settings ask for it, the dashboard."""
        self.alarm_topic = self._alarm_topic()
        self.alarms = self._alarms()
        self.dashboard: cloudwatch.Dashboard | None = (
            self._dashboard() if self.settings.dashboard else None
        )

    def _outputs(self) -> None:
        outputs = {
            "ApiUrl": (self.api.url, "Base URL of the REST API"),
            "QueueUrl": (self.queue.queue_url, FLOWCRAFT_QUEUE_URL),
            "DeadLetterQueueUrl": (self.dead_letter_queue.queue_url, "Jobs that exhausted retries"),
            "ContextTableName": (self.tables["context"].table_name, FLOWCRAFT_CONTEXT_TABLE),
            "StatusTableName": (self.tables["status"].table_name, FLOWCRAFT_STATUS_TABLE),
            "CoordinationTableName": (
                self.tables["coordination"].table_name,
                FLOWCRAFT_COORDINATION_TABLE,
            ),
            "WorkerFunctionName": (self.worker.function_name, "SQS-triggered worker"),
            "ReconcilerFunctionName": (self.reconciler.function_name, "Scheduled reconciler"),
            "ApiFunctionName": (self.api_function.function_name, "API Gateway handler"),
            "PayloadBucketName": (self.payload_bucket.bucket_name, FLOWCRAFT_PAYLOAD_BUCKET),
            "AlarmTopicArn": (self.alarm_topic.topic_arn, "SNS topic every alarm notifies"),
        }
        if self.dashboard is not None:
            outputs["DashboardUrl"] = (
                f"https://{Aws.REGION}.console.aws.amazon.com/cloudwatch/home?region="
                f"{Aws.REGION}#dashboards:name={self.dashboard.dashboard_name}",
                "CloudWatch dashboard",
            )
        for output_id, (value, description) in outputs.items():
            CfnOutput(self, output_id, value=value, description=description)
