"""The Flowcraft stack: job queue, tables, payload bucket, three functions, REST API, alarms,
dashboard.

Infrastructure only. Table and queue shapes come from ``flowcraft_core.aws.schema`` (the module
local provisioning uses too), so what deploys and what runs on a laptop cannot drift. Every name
carries the settings' prefix, so two copies (``flowcraft`` and ``flowcraft-staging``) deploy side
by side in one account.

IAM is written out action by action rather than with ``grant_read_write_data``: the CDK grant
methods add batch, scan and describe actions the handlers never call. Every grant is one row of
``GRANTS`` below (function -> resource -> actions); the handlers must stay within it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from aws_cdk import (
    Acknowledgment,
    Aws,
    CfnElement,
    CfnOutput,
    Duration,
    RemovalPolicy,
    Stack,
    Validations,
)
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct, IConstruct

from flowcraft_core.aws.schema import (
    DEFAULT_PREFIX,
    DEFAULT_RUN_HORIZON_DAYS,
    JOB_QUEUE,
    PAYLOAD_BUCKET,
    TABLES,
    IndexSpec,
    KeySpec,
    TableSpec,
)

from .bundling import BundleSpec, lambda_code
from .settings import Settings

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
#: The worker-duration alarm fires when an invocation uses this share of the timeout.
WORKER_DURATION_ALARM_RATIO = 0.8
#: Per-IP requests per 5 minutes the WAF rate rule allows (flowcraft:waf).
WAF_RATE_LIMIT_PER_5_MINUTES = 3000
API_TIMEOUT_SECONDS = 15  # below API Gateway's 29 s integration limit
API_MEMORY_MB = 256
RECONCILER_TIMEOUT_SECONDS = 60
RECONCILER_MEMORY_MB = 256
STAGE_NAME = "prod"
#: The webhook route in resource-policy form (any stage, runs, nodes).
WEBHOOK_RESOURCE = "execute-api:/*/POST/runs/*/webhooks/*"


def start_run_schema() -> dict[str, Any]:
    """The gateway's StartRun model, generated from the function's request model (so its length
    limits and run-id pattern cannot drift), in the JSON Schema draft 4 API Gateway reads.
    Unknown fields are left to the function, whose answer names them."""
    from handlers.api_models import StartRunRequest

    schema = StartRunRequest.model_json_schema(by_alias=True)
    properties: dict[str, Any] = {}
    for name, prop in schema["properties"].items():
        prop = {k: v for k, v in prop.items() if k not in ("title", "default")}
        options = prop.pop("anyOf", None)
        if options is not None:  # X or null: draft 4 spells it as a list of types
            concrete = next(o for o in options if o.get("type") != "null")
            prop = {**concrete, **prop, "type": [concrete["type"], "null"]}
        properties[name] = prop
    return {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "title": "StartRun",
        "type": "object",
        "required": schema["required"],
        "properties": properties,
    }


#: Answer to a body that fails the StartRun model (``$message`` becomes API Gateway's quoted
#: message). Keep it in step with the model in ``_rest_api``.
BAD_REQUEST_BODY: dict[str, str] = {
    "message": "$message",
    "detail": "POST /runs takes a JSON object: blueprintId (1-200 characters, required), "
    "context (object), runId (1-200 letters, digits or . _ : -)",
}
#: One JSON object per request: who called, what, the answer, and why it failed when it did
#: (authorizer, validation and integration errors never reach the function's own logs).
#: Only fields whose values cannot contain double quotes, so every line stays valid JSON.
ACCESS_LOG_FIELDS: dict[str, str] = {
    "requestId": "$context.requestId",
    "requestTime": "$context.requestTime",
    "ip": "$context.identity.sourceIp",
    "caller": "$context.identity.caller",
    "user": "$context.identity.user",
    "userArn": "$context.identity.userArn",
    "apiKeyId": "$context.identity.apiKeyId",
    "httpMethod": "$context.httpMethod",
    "resourcePath": "$context.resourcePath",
    "path": "$context.path",
    "protocol": "$context.protocol",
    "status": "$context.status",
    "responseLength": "$context.responseLength",
    "responseLatency": "$context.responseLatency",
    "integrationStatus": "$context.integration.status",
    "integrationLatency": "$context.integration.latency",
    "errorMessage": "$context.error.message",
    "integrationError": "$context.integration.error",
}

_RETENTION: dict[int, logs.RetentionDays] = {
    0: logs.RetentionDays.INFINITE,
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
    1096: logs.RetentionDays.THREE_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    2192: logs.RetentionDays.SIX_YEARS,
    2557: logs.RetentionDays.SEVEN_YEARS,
    2922: logs.RetentionDays.EIGHT_YEARS,
    3288: logs.RetentionDays.NINE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}


def _attribute(key: KeySpec) -> dynamodb.Attribute:
    kind = dynamodb.AttributeType.NUMBER if key.type == "N" else dynamodb.AttributeType.STRING
    return dynamodb.Attribute(name=key.name, type=kind)


def _acknowledge(scope: IConstruct, rule_id: str, reason: str) -> None:
    Validations.of(scope).acknowledge(Acknowledgment(id=rule_id, reason=reason))


class FlowcraftStack(Stack):
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
        self.log_retention = _RETENTION[settings.log_retention_days]

        self.tables: dict[str, dynamodb.Table] = {spec.role: self._table(spec) for spec in TABLES}
        self.payload_bucket = self._payload_bucket()
        self.dead_letter_queue, self.queue = self._queues()
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
        self.api = self._rest_api()
        # Webhook nodes hand out URLs under the API (the route needs no AWS signature).
        self.worker.add_environment("FLOWCRAFT_WEBHOOK_BASE_URL", self.api.url)
        self.alarm_topic = self._alarm_topic()
        self.alarms = self._alarms()
        self.dashboard: cloudwatch.Dashboard | None = (
            self._dashboard() if settings.dashboard else None
        )
        self._outputs()

    @property
    def metrics_namespace(self) -> str:
        """The EMF namespace of the functions' own metrics: ``Flowcraft`` for the default
        prefix, ``Flowcraft/<prefix>`` for any other copy, so two copies' figures never mix
        (the handlers' ``service`` dimension is the same in every copy)."""
        prefix = self.settings.prefix
        return "Flowcraft" if prefix == DEFAULT_PREFIX else f"Flowcraft/{prefix}"

    # ----------------------------------------------------------------------------- storage

    def _table(self, spec: TableSpec) -> dynamodb.Table:
        """A table from its spec: on-demand, point-in-time recovery, TTL on the spec's attribute."""
        table = dynamodb.Table(
            self,
            f"{spec.role.capitalize()}Table",
            table_name=spec.name(self.settings.prefix),
            partition_key=_attribute(spec.partition_key),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            time_to_live_attribute=spec.ttl_attribute,
            deletion_protection=self.settings.deletion_protection,
            removal_policy=self.removal_policy,
        )
        for index in spec.indexes:
            self._index(table, index)
        return table

    @staticmethod
    def _index(table: dynamodb.Table, index: IndexSpec) -> None:
        table.add_global_secondary_index(
            index_name=index.name,
            partition_key=_attribute(index.partition_key),
            sort_key=_attribute(index.sort_key) if index.sort_key else None,
            projection_type=(
                dynamodb.ProjectionType.ALL
                if index.projection == "ALL"
                else dynamodb.ProjectionType.KEYS_ONLY
            ),
        )

    def _payload_bucket(self) -> s3.Bucket:
        """Values too large for an item, under ``runs/<runId>/...``.

        CloudFormation names it (bucket names are global). SSE-S3, public access blocked,
        TLS-only bucket policy, no versioning (objects are written once under unique keys),
        and a lifecycle rule that expires objects ``retention + horizon`` days after they were
        written, the same horizon as the items' TTL. With ``removalPolicy=destroy`` CDK empties
        the bucket before deleting it, as the tables are deleted with their items.
        """
        destroy = self.removal_policy == RemovalPolicy.DESTROY
        bucket = s3.Bucket(
            self,
            "PayloadBucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            versioned=False,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-run-payloads",
                    prefix=PAYLOAD_BUCKET.key_prefix,
                    expiration=Duration.days(self.payload_expiry_days),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                )
            ],
            removal_policy=self.removal_policy,
            auto_delete_objects=destroy,
        )
        _acknowledge(
            bucket,
            "AwsSolutions-S1",
            "Only this stack's functions read and write the bucket, under keys named after run "
            "ids; server access logs would need a second bucket per stack and record nothing "
            "the functions' logs and CloudTrail data events (when the account wants them) do "
            "not. Public access is blocked and TLS enforced.",
        )
        return bucket

    @property
    def payload_expiry_days(self) -> int:
        """Days after which a payload object expires: the run retention plus the run horizon
        (``flowcraft_core.aws.schema``), so a payload outlives its run by the retention."""
        return self.settings.retention_days + DEFAULT_RUN_HORIZON_DAYS

    def _queues(self) -> tuple[sqs.Queue, sqs.Queue]:
        """Job queue + DLQ. Visibility covers 6 worker timeouts (AWS's advice for Lambda
        consumers: a retried invocation must not see its own batch reappear)."""
        spec = dataclasses.replace(JOB_QUEUE, fifo=self.settings.fifo)
        fifo = True if spec.fifo else None
        prefix = self.settings.prefix
        dead_letter_queue = sqs.Queue(
            self,
            "JobDeadLetterQueue",
            queue_name=spec.dlq_name(prefix),
            retention_period=Duration.seconds(spec.dlq_retention_seconds),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            fifo=fifo,
            content_based_deduplication=fifo,
            removal_policy=self.removal_policy,
        )
        _acknowledge(
            dead_letter_queue,
            "AwsSolutions-SQS3",
            "This is the dead-letter queue of the job queue; a DLQ of a DLQ would only hide "
            "failures. The DlqNotEmpty alarm watches it instead.",
        )
        visibility = max(spec.visibility_timeout_seconds, 6 * self.settings.worker_timeout_seconds)
        queue = sqs.Queue(
            self,
            "JobQueue",
            queue_name=spec.name(prefix),
            visibility_timeout=Duration.seconds(visibility),
            retention_period=Duration.seconds(spec.retention_seconds),
            receive_message_wait_time=Duration.seconds(spec.receive_wait_seconds),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            fifo=fifo,
            content_based_deduplication=fifo,
            dead_letter_queue=sqs.DeadLetterQueue(
                max_receive_count=spec.max_receive_count, queue=dead_letter_queue
            ),
            removal_policy=self.removal_policy,
        )
        return dead_letter_queue, queue

    # --------------------------------------------------------------------------- functions

    def _environment(self) -> dict[str, str]:
        """The contract of ``handlers/config.py`` (README, "Settings"), same for all three."""
        return {
            "FLOWCRAFT_QUEUE_URL": self.queue.queue_url,
            "FLOWCRAFT_CONTEXT_TABLE": self.tables["context"].table_name,
            "FLOWCRAFT_STATUS_TABLE": self.tables["status"].table_name,
            "FLOWCRAFT_COORDINATION_TABLE": self.tables["coordination"].table_name,
            "FLOWCRAFT_PAYLOAD_BUCKET": self.payload_bucket.bucket_name,
            "FLOWCRAFT_RETENTION_DAYS": str(self.settings.retention_days),
            "FLOWCRAFT_APP": "workflows",
            "FLOWCRAFT_STALLED_SECONDS": str(self.settings.stalled_seconds),
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
        """A function with its own role, log group and reserved concurrency.

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
        architecture = (
            lambda_.Architecture.ARM_64
            if self.settings.architecture == "arm64"
            else lambda_.Architecture.X86_64
        )
        function = lambda_.Function(
            self,
            f"{label}Function",
            function_name=f"{self.settings.prefix}-{role_name}",
            description=f"Flowcraft {role_name}",
            runtime=lambda_.Runtime.PYTHON_3_13,
            architecture=architecture,
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
        _acknowledge(
            function,
            "AwsSolutions-L1",
            "Pinned to Python 3.13 on purpose: dependency wheels and precompiled bytecode are "
            "built for exactly this version; moving runtimes is a deliberate change.",
        )
        if self.settings.tracing:
            # X-Ray's PutTraceSegments/PutTelemetryRecords have no resource-level permissions.
            _acknowledge(
                role,
                "AwsSolutions-IAM5[Resource::*]",
                "X-Ray trace upload actions do not support resource-level permissions.",
            )
        return function

    def _logical_id(self, construct: IConstruct) -> str:
        child = construct.node.default_child
        assert isinstance(child, CfnElement)
        return str(self.resolve(self.get_logical_id(child)))

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
                _acknowledge(
                    function.role or function,
                    "AwsSolutions-IAM5[Resource::<"
                    + self._logical_id(self.payload_bucket)
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

    # --------------------------------------------------------------------------------- API

    def _method_options(self, api: apigw.RestApi) -> apigw.MethodOptions:
        """Authorization for every method: IAM (SigV4) by default, or API keys, or Cognito."""
        auth = self.settings.api_auth
        if auth == "cognito":
            pool = cognito.UserPool.from_user_pool_arn(
                self, "UserPool", self.settings.cognito_user_pool_arn
            )
            authorizer = apigw.CognitoUserPoolsAuthorizer(
                self, "Authorizer", cognito_user_pools=[pool]
            )
            return apigw.MethodOptions(
                authorization_type=apigw.AuthorizationType.COGNITO, authorizer=authorizer
            )
        if auth == "api_key":
            return apigw.MethodOptions(
                authorization_type=apigw.AuthorizationType.NONE, api_key_required=True
            )
        return apigw.MethodOptions(authorization_type=apigw.AuthorizationType.IAM)

    def _rest_api(self) -> apigw.RestApi:
        settings = self.settings
        access_logs = logs.LogGroup(
            self, "ApiAccessLogs", retention=self.log_retention, removal_policy=self.removal_policy
        )
        self.runs_started = self._runs_started_metric(access_logs)
        api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=f"{settings.prefix}-api",
            description="Start, list, inspect, resume, cancel and redrive Flowcraft runs",
            endpoint_types=[
                apigw.EndpointType.PRIVATE
                if settings.api_source_vpce
                else apigw.EndpointType.REGIONAL
            ],
            policy=self._api_resource_policy(),
            cloud_watch_role=settings.api_cloudwatch_role,
            deploy_options=apigw.StageOptions(
                stage_name=STAGE_NAME,
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FIELDS)),
                throttling_rate_limit=settings.api_throttle_rate,
                throttling_burst_limit=settings.api_throttle_burst,
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,  # would log request and response bodies
                tracing_enabled=settings.tracing,
            ),
        )
        # Gateway response templates get plain variable substitution, not VTL: no $util to
        # escape the validator's message (it can contain quotes), so the detail is static.
        api.add_gateway_response(
            "BadRequestBody",
            type=apigw.ResponseType.BAD_REQUEST_BODY,
            status_code="400",
            templates={
                "application/json": json.dumps(BAD_REQUEST_BODY).replace(
                    '"$message"', "$context.error.messageString"
                )
            },
        )
        validator = api.add_request_validator(
            "RequestValidator",
            validate_request_body=True,
            validate_request_parameters=True,
        )
        start_model = api.add_model(
            "StartRunModel",
            content_type="application/json",
            model_name="StartRun",
            # Replaced below by the schema generated from the function's own request model.
            schema=apigw.JsonSchema(schema=apigw.JsonSchemaVersion.DRAFT4, title="StartRun"),
        )
        model_resource = start_model.node.default_child
        assert isinstance(model_resource, apigw.CfnModel)
        model_resource.add_property_override("Schema", start_run_schema())
        integration = apigw.LambdaIntegration(self.api_function, allow_test_invoke=False)
        options = self._method_options(api)
        run_id = {"method.request.path.runId": True}
        page = {
            "method.request.querystring.limit": False,
            "method.request.querystring.nextToken": False,
        }

        def method(
            resource: apigw.IResource,
            verb: str,
            *,
            parameters: dict[str, bool] | None = None,
            models: dict[str, apigw.IModel] | None = None,
        ) -> apigw.Method:
            return resource.add_method(
                verb,
                integration,
                authorization_type=options.authorization_type,
                authorizer=options.authorizer,
                api_key_required=options.api_key_required,
                request_validator=validator,
                request_parameters=parameters,
                request_models=models,
            )

        runs = api.root.add_resource("runs")
        run = runs.add_resource("{runId}")
        # "$default" applies the model to every content type: a body sent as text/plain or
        # form data is validated like JSON (and refused), never passed to the function unchecked.
        methods = [
            method(runs, "POST", models={"application/json": start_model, "$default": start_model}),
            method(
                runs,
                "GET",
                parameters={
                    "method.request.querystring.status": False,
                    "method.request.querystring.blueprintId": False,
                    **page,
                },
            ),
            method(run, "GET", parameters=run_id),
            method(run.add_resource("nodes"), "GET", parameters={**run_id, **page}),
            method(run.add_resource("resume"), "POST", parameters=run_id),
            method(run.add_resource("cancel"), "POST", parameters=run_id),
            method(run.add_resource("redrive"), "POST", parameters=run_id),
            method(api.root.add_resource("openapi.json"), "GET"),
        ]
        # Webhooks: the caller is an outside system with no AWS identity; the function checks
        # the node's own token (header or query string) and answers 403 when it is wrong.
        webhook = (
            run.add_resource("webhooks")
            .add_resource("{nodeId}")
            .add_method(
                "POST",
                integration,
                authorization_type=apigw.AuthorizationType.NONE,
                api_key_required=False,
                request_validator=validator,
                request_parameters={**run_id, "method.request.path.nodeId": True},
            )
        )
        self.web_acl = self._web_acl(api) if settings.waf else None
        self._api_acknowledgments(api, methods, webhook)
        # RestApi adds an "Endpoint" output with a generated id; the stack's ApiUrl replaces it.
        api.node.try_remove_child("Endpoint")
        if settings.api_auth == "api_key":
            plan = api.add_usage_plan(
                "UsagePlan",
                name=f"{settings.prefix}-usage",
                throttle=apigw.ThrottleSettings(
                    rate_limit=settings.api_throttle_rate, burst_limit=settings.api_throttle_burst
                ),
                api_stages=[apigw.UsagePlanPerApiStage(api=api, stage=api.deployment_stage)],
            )
            key = api.add_api_key("ApiKey", api_key_name=f"{settings.prefix}-key")
            plan.add_api_key(key)
            CfnOutput(
                self,
                "ApiKeyId",
                value=key.key_id,
                description="aws apigateway get-api-key --include-value --api-key <id>",
            )
        return api

    def _api_resource_policy(self) -> iam.PolicyDocument | None:
        """Who may reach the API at all, checked before any authorizer: only the listed
        principals (``apiAllowedPrincipals``) and/or only through one VPC endpoint
        (``apiSourceVpce``, which also makes the API private). None when neither is set.

        The webhook route stays open to unsigned callers under a principal restriction (its
        token is the credential); behind a VPC endpoint it is reachable through that endpoint
        only, like every route. With IAM auth, callers still need ``execute-api:Invoke`` in
        their own identity policies: the policy's allow names accounts, not everyone.
        """
        settings = self.settings
        if not (settings.api_allowed_principals or settings.api_source_vpce):
            return None
        everything = "execute-api:/*"
        # With IAM auth the allow names accounts, never "*": an account principal delegates to
        # the callers' own identity policies, so execute-api:Invoke stays required. API keys and
        # Cognito tokens carry no IAM principal; there the authorizer is the check.
        principals: list[iam.IPrincipal] = [iam.AnyPrincipal()]
        if settings.api_auth == "iam":
            trusted = {Aws.ACCOUNT_ID} | {
                p if not p.startswith("arn:") else p.split(":")[4]
                for p in settings.api_allowed_principals
            }
            principals = [iam.AccountPrincipal(account) for account in sorted(trusted)]
        statements = [
            iam.PolicyStatement(
                actions=["execute-api:Invoke"],
                principals=[iam.AnyPrincipal()],
                resources=[WEBHOOK_RESOURCE],
            ),
            iam.PolicyStatement(
                actions=["execute-api:Invoke"],
                principals=principals,
                resources=[everything],
            ),
        ]
        if settings.api_allowed_principals:
            arns = [p for p in settings.api_allowed_principals if p.startswith("arn:")]
            accounts = [p for p in settings.api_allowed_principals if not p.startswith("arn:")]
            conditions: dict[str, Any] = {}
            if arns:
                conditions["StringNotLike"] = {"aws:PrincipalArn": arns}
            if accounts:
                conditions["StringNotEquals"] = {"aws:PrincipalAccount": accounts}
            statements.append(
                iam.PolicyStatement(
                    effect=iam.Effect.DENY,
                    actions=["execute-api:Invoke"],
                    principals=[iam.AnyPrincipal()],
                    not_resources=[WEBHOOK_RESOURCE],
                    conditions=conditions,
                )
            )
        if settings.api_source_vpce:
            statements.append(
                iam.PolicyStatement(
                    effect=iam.Effect.DENY,
                    actions=["execute-api:Invoke"],
                    principals=[iam.AnyPrincipal()],
                    resources=[everything],
                    conditions={"StringNotEquals": {"aws:SourceVpce": settings.api_source_vpce}},
                )
            )
        return iam.PolicyDocument(statements=statements)

    def _web_acl(self, api: apigw.RestApi) -> wafv2.CfnWebACL:
        """AWS managed rules (common, known bad inputs, IP reputation) and a per-IP rate limit,
        in front of the stage. The common rule set's 8 KB body limit only counts: run contexts
        and resume outputs may be larger (the API validates sizes itself)."""
        prefix = self.settings.prefix

        def visibility(name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
            return wafv2.CfnWebACL.VisibilityConfigProperty(
                cloud_watch_metrics_enabled=True,
                metric_name=f"{prefix}-{name}",
                sampled_requests_enabled=True,
            )

        def managed(
            priority: int, name: str, overrides: list[str] | None = None
        ) -> wafv2.CfnWebACL.RuleProperty:
            return wafv2.CfnWebACL.RuleProperty(
                name=name,
                priority=priority,
                override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                statement=wafv2.CfnWebACL.StatementProperty(
                    managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                        vendor_name="AWS",
                        name=name,
                        rule_action_overrides=[
                            wafv2.CfnWebACL.RuleActionOverrideProperty(
                                name=rule,
                                action_to_use=wafv2.CfnWebACL.RuleActionProperty(count={}),
                            )
                            for rule in overrides or []
                        ]
                        or None,
                    )
                ),
                visibility_config=visibility(name),
            )

        acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            name=f"{prefix}-api",
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=visibility("api"),
            rules=[
                wafv2.CfnWebACL.RuleProperty(
                    name="rate-per-ip",
                    priority=0,
                    action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                    statement=wafv2.CfnWebACL.StatementProperty(
                        rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                            aggregate_key_type="IP", limit=WAF_RATE_LIMIT_PER_5_MINUTES
                        )
                    ),
                    visibility_config=visibility("rate-per-ip"),
                ),
                managed(1, "AWSManagedRulesAmazonIpReputationList"),
                managed(2, "AWSManagedRulesCommonRuleSet", ["SizeRestrictions_BODY"]),
                managed(3, "AWSManagedRulesKnownBadInputsRuleSet"),
            ],
        )
        wafv2.CfnWebACLAssociation(
            self,
            "WebAclAssociation",
            resource_arn=api.deployment_stage.stage_arn,
            web_acl_arn=acl.attr_arn,
        )
        return acl

    def _api_acknowledgments(
        self, api: apigw.RestApi, methods: list[apigw.Method], webhook: apigw.Method
    ) -> None:
        if not self.settings.waf:
            _acknowledge(
                api.deployment_stage,
                "AwsSolutions-APIG3",
                "No WAF web ACL by default: every method but the token-checked webhook needs "
                "IAM/Cognito/API-key auth and the stage is throttled. flowcraft:waf=true adds "
                "one where the API is public.",
            )
        for rule_id in ("AwsSolutions-APIG4", "AwsSolutions-COG4"):
            _acknowledge(
                webhook,
                rule_id,
                "POST /runs/{runId}/webhooks/{nodeId} is called by outside systems without AWS "
                "credentials: the function checks the node's own secret token (header or query "
                "string) and answers 403 when it is wrong; the stage is throttled.",
            )
        if self.settings.api_auth != "cognito":
            for method in methods:
                _acknowledge(
                    method,
                    "AwsSolutions-COG4",
                    f"Authorization is {self.settings.api_auth} (flowcraft:apiAuth); a Cognito "
                    "authorizer is the opt-in alternative for end-user callers.",
                )
        if self.settings.api_auth == "api_key":
            for method in methods:
                _acknowledge(
                    method,
                    "AwsSolutions-APIG4",
                    "flowcraft:apiAuth=api_key chosen explicitly: methods require an API key "
                    "from the stack's usage plan instead of an authorizer.",
                )
        cloudwatch_role = api.node.try_find_child("CloudWatchRole")
        if cloudwatch_role is not None:
            _acknowledge(
                cloudwatch_role,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AmazonAPIGatewayPushToCloudWatchLogs]",
                "API Gateway's account-level logging role; AWS maintains this policy for exactly "
                "this purpose and access logs cannot be written without it.",
            )

    # ------------------------------------------------------------------------ observability

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
            _acknowledge(
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
        """Every alarm notifies the alarm topic, when it fires and when it clears."""
        settings = self.settings
        minute = Duration.minutes(1)
        five_minutes = Duration.minutes(5)
        timeout_ms = settings.worker_timeout_seconds * 1000
        near_timeout_ms = int(timeout_ms * WORKER_DURATION_ALARM_RATIO)
        alarms = [
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
                f"Jobs wait in the queue longer than {settings.oldest_message_alarm_seconds} s: "
                "workers are behind or failing",
                self.queue.metric_approximate_age_of_oldest_message(
                    period=five_minutes, statistic="Maximum"
                ),
                settings.oldest_message_alarm_seconds,
            ),
            self._alarm(
                "ReconcilerErrors",
                "reconciler-errors",
                "The reconciler failed: stalled runs are not being resumed",
                self.reconciler.metric_errors(period=five_minutes, statistic="Sum"),
                0,
            ),
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
                f"API p90 latency above {settings.api_latency_alarm_ms} ms for 15 minutes",
                self.api.metric_latency(period=five_minutes, statistic="p90"),
                settings.api_latency_alarm_ms,
                evaluation_periods=3,
            ),
            self._alarm(
                "WorkerNearTimeout",
                "worker-near-timeout",
                f"A worker invocation ran longer than {near_timeout_ms} ms "
                f"({WORKER_DURATION_ALARM_RATIO:.0%} of its {settings.worker_timeout_seconds} s "
                "timeout): raise the timeout or make nodes shorter before invocations time out",
                self.worker.metric_duration(period=five_minutes, statistic="Maximum"),
                near_timeout_ms,
            ),
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

    def _runs_started_metric(self, access_logs: logs.ILogGroup) -> cloudwatch.Metric:
        """Accepted ``POST /runs`` requests, counted from the API's access log (the API function
        emits no metric of its own). An idempotent repeat of a start counts again."""
        metric_filter = logs.MetricFilter(
            self,
            "RunsStartedFilter",
            log_group=access_logs,
            metric_namespace=self.metrics_namespace,
            metric_name="RunsStarted",
            filter_pattern=logs.FilterPattern.all(
                logs.FilterPattern.string_value("$.httpMethod", "=", "POST"),
                logs.FilterPattern.string_value("$.resourcePath", "=", "/runs"),
                logs.FilterPattern.string_value("$.status", "=", "202"),
            ),
            metric_value="1",
        )
        return metric_filter.metric(
            statistic="Sum", period=Duration.minutes(1), label="Runs started"
        )

    def _dashboard(self) -> cloudwatch.Dashboard:
        def graph(
            title: str, *metrics: cloudwatch.IMetric, width: int = 8
        ) -> cloudwatch.GraphWidget:
            return cloudwatch.GraphWidget(title=title, left=list(metrics), width=width)

        minute = Duration.minutes(1)
        dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=f"{self.settings.prefix}-dashboard"
        )
        dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(alarms=list(self.alarms), width=24, height=4),
        )
        dashboard.add_widgets(
            graph(
                "Runs per minute",
                self.runs_started,
                self._emf_metric("RunsCompleted", "Runs completed"),
                self._emf_metric("RunsFailed", "Runs failed"),
            ),
            graph(
                "Nodes per minute",
                self._emf_metric("NodesExecuted", "Nodes executed"),
                self._emf_metric("NodeFailures", "Node failures"),
                self._emf_metric("Retries", "Retries"),
            ),
            graph(
                "Node duration (ms)",
                self._emf_metric("NodeDuration", "p50", statistic="p50"),
                self._emf_metric("NodeDuration", "p99", statistic="p99"),
            ),
        )
        dashboard.add_widgets(
            graph(
                "Job queue depth",
                self.queue.metric_approximate_number_of_messages_visible(
                    period=minute, label="Visible"
                ),
                self.queue.metric_approximate_number_of_messages_not_visible(
                    period=minute, label="In flight"
                ),
            ),
            graph(
                "Oldest job age (s)",
                self.queue.metric_approximate_age_of_oldest_message(period=minute),
            ),
            graph(
                "Dead-letter queue depth",
                self.dead_letter_queue.metric_approximate_number_of_messages_visible(
                    period=minute, label="Dead letters"
                ),
            ),
        )
        functions = self.functions.items()
        dashboard.add_widgets(
            graph(
                "Lambda errors",
                *(f.metric_errors(period=minute, label=name) for name, f in functions),
            ),
            graph(
                "Lambda duration p99 (ms)",
                *(
                    f.metric_duration(period=minute, statistic="p99", label=name)
                    for name, f in functions
                ),
            ),
            graph(
                "Lambda throttles",
                *(f.metric_throttles(period=minute, label=name) for name, f in functions),
            ),
        )
        dashboard.add_widgets(
            graph(
                "API requests",
                self.api.metric_count(period=minute, label="Requests"),
                self.api.metric_client_error(period=minute, label="4XX"),
                self.api.metric_server_error(period=minute, label="5XX"),
            ),
            graph(
                "API latency (ms)",
                self.api.metric_latency(period=minute, statistic="p50", label="p50"),
                self.api.metric_latency(period=minute, statistic="p99", label="p99"),
                self.api.metric_integration_latency(
                    period=minute, statistic="p99", label="integration p99"
                ),
            ),
            graph(
                "Reconciler",
                self._emf_metric("StalledRuns", "Stalled runs"),
                self._emf_metric("ReconciledRuns", "Reconciled runs"),
                self._emf_metric("ReconcileFailures", "Failures"),
            ),
        )
        return dashboard

    def _outputs(self) -> None:
        outputs = {
            "ApiUrl": (self.api.url, "Base URL of the REST API"),
            "QueueUrl": (self.queue.queue_url, "FLOWCRAFT_QUEUE_URL"),
            "DeadLetterQueueUrl": (self.dead_letter_queue.queue_url, "Jobs that exhausted retries"),
            "ContextTableName": (self.tables["context"].table_name, "FLOWCRAFT_CONTEXT_TABLE"),
            "StatusTableName": (self.tables["status"].table_name, "FLOWCRAFT_STATUS_TABLE"),
            "CoordinationTableName": (
                self.tables["coordination"].table_name,
                "FLOWCRAFT_COORDINATION_TABLE",
            ),
            "WorkerFunctionName": (self.worker.function_name, "SQS-triggered worker"),
            "ReconcilerFunctionName": (self.reconciler.function_name, "Scheduled reconciler"),
            "ApiFunctionName": (self.api_function.function_name, "API Gateway handler"),
            "PayloadBucketName": (self.payload_bucket.bucket_name, "FLOWCRAFT_PAYLOAD_BUCKET"),
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
