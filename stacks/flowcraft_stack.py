"""The Flowcraft stack: job queue, tables, three functions, REST API, alarms.

Infrastructure only. Table and queue shapes come from ``flowcraft_core.aws.schema`` (the module
local provisioning uses too), so what deploys and what runs on a laptop cannot drift. Every name
carries the settings' prefix, so two copies (``flowcraft`` and ``flowcraft-staging``) deploy side
by side in one account.

IAM is written out action by action rather than with ``grant_read_write_data``: the CDK grant
methods add batch, scan and describe actions the handlers never call. The exact lists are
module constants below; the handlers must stay within them.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from aws_cdk import (
    Acknowledgment,
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
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct, IConstruct

from flowcraft_core.aws.schema import (
    JOB_QUEUE,
    STATUS_ACTIVE_INDEX,
    TABLES,
    IndexSpec,
    KeySpec,
    TableSpec,
)

from .bundling import BundleSpec, lambda_code
from .settings import Settings

#: Item-level DynamoDB actions every function may use on every table. ``TransactWriteItems`` and
#: ``TransactGetItems`` are authorized through these same actions, so transactions are covered;
#: ``BatchWriteItem``, ``BatchGetItem`` and ``Scan`` are deliberately absent.
TABLE_ACTIONS: tuple[str, ...] = (
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:ConditionCheckItem",
)
#: Only the reconciler queries, and only the status table and its ``activeRuns`` index.
RECONCILER_QUERY_ACTIONS: tuple[str, ...] = ("dynamodb:Query",)
#: ``SendMessage`` also authorizes ``SendMessageBatch``.
SEND_ACTIONS: tuple[str, ...] = ("sqs:SendMessage",)
#: The worker may extend or shorten a job's visibility (backoff, long nodes); the SQS event
#: source adds ReceiveMessage, DeleteMessage, ChangeMessageVisibility, GetQueueAttributes and
#: GetQueueUrl for the poller itself.
WORKER_QUEUE_ACTIONS: tuple[str, ...] = ("sqs:SendMessage", "sqs:ChangeMessageVisibility")

HANDLERS: dict[str, str] = {
    "worker": "handlers.worker.handler",
    "reconciler": "handlers.reconciler.handler",
    "api": "handlers.api.handler",
}
API_TIMEOUT_SECONDS = 15  # below API Gateway's 29 s integration limit
API_MEMORY_MB = 256
RECONCILER_TIMEOUT_SECONDS = 60
RECONCILER_MEMORY_MB = 256
STAGE_NAME = "prod"
#: Answer to a body that fails the StartRun model (``$message`` becomes API Gateway's quoted
#: message). Keep it in step with the model in ``_rest_api``.
BAD_REQUEST_BODY: dict[str, str] = {
    "message": "$message",
    "detail": "POST /runs takes a JSON object: blueprintId (non-empty string, required), "
    "context (object), runId (non-empty string)",
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

        self.tables = {spec.role: self._table(spec) for spec in TABLES}
        self.dead_letter_queue, self.queue = self._queues()
        code = lambda_code(
            BundleSpec(
                project_root=project_root,
                platform=settings.pip_platform,
                bundle_dependencies=settings.bundle_dependencies,
            )
        )
        self.worker = self._function(
            "worker", code, settings.worker_timeout_seconds, settings.worker_memory_mb
        )
        self.reconciler = self._function(
            "reconciler", code, RECONCILER_TIMEOUT_SECONDS, RECONCILER_MEMORY_MB, retries=0
        )
        self.api_function = self._function("api", code, API_TIMEOUT_SECONDS, API_MEMORY_MB)
        self._grant()
        self._wire_worker()
        self._schedule_reconciler()
        self.api = self._rest_api()
        self.alarms = self._alarms()
        if settings.dashboard:
            self._dashboard()
        self._outputs()

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
        """The contract of ``handlers/config.py`` (DESIGN.md section 3), same for all three."""
        return {
            "FLOWCRAFT_QUEUE_URL": self.queue.queue_url,
            "FLOWCRAFT_CONTEXT_TABLE": self.tables["context"].table_name,
            "FLOWCRAFT_STATUS_TABLE": self.tables["status"].table_name,
            "FLOWCRAFT_COORDINATION_TABLE": self.tables["coordination"].table_name,
            "FLOWCRAFT_APP": "workflows",
            "FLOWCRAFT_STALLED_SECONDS": str(self.settings.stalled_seconds),
            "POWERTOOLS_SERVICE_NAME": "flowcraft",
            "POWERTOOLS_METRICS_NAMESPACE": "Flowcraft",
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
    ) -> lambda_.Function:
        """A function with its own role and log group.

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

    def _table_statement(self, actions: tuple[str, ...]) -> iam.PolicyStatement:
        return iam.PolicyStatement(
            actions=list(actions),
            resources=[table.table_arn for table in self.tables.values()],
        )

    def _grant(self) -> None:
        """Least privilege: the item actions on the three tables, SendMessage on the job queue,
        and Query (status table and its active-runs index only) for the reconciler."""
        status = self.tables["status"]
        for function in (self.worker, self.reconciler, self.api_function):
            function.add_to_role_policy(self._table_statement(TABLE_ACTIONS))
        self.worker.add_to_role_policy(
            iam.PolicyStatement(
                actions=list(WORKER_QUEUE_ACTIONS), resources=[self.queue.queue_arn]
            )
        )
        for function in (self.reconciler, self.api_function):
            function.add_to_role_policy(
                iam.PolicyStatement(actions=list(SEND_ACTIONS), resources=[self.queue.queue_arn])
            )
        self.reconciler.add_to_role_policy(
            iam.PolicyStatement(
                actions=list(RECONCILER_QUERY_ACTIONS),
                resources=[status.table_arn, f"{status.table_arn}/index/{STATUS_ACTIVE_INDEX}"],
            )
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
        api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=f"{settings.prefix}-api",
            description="Start, inspect, resume and cancel Flowcraft runs",
            endpoint_types=[apigw.EndpointType.REGIONAL],
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
            schema=apigw.JsonSchema(
                schema=apigw.JsonSchemaVersion.DRAFT4,
                title="StartRun",
                type=apigw.JsonSchemaType.OBJECT,
                required=["blueprintId"],
                properties={
                    "blueprintId": apigw.JsonSchema(type=apigw.JsonSchemaType.STRING, min_length=1),
                    "context": apigw.JsonSchema(type=apigw.JsonSchemaType.OBJECT),
                    "runId": apigw.JsonSchema(
                        type=[apigw.JsonSchemaType.STRING, apigw.JsonSchemaType.NULL],
                        min_length=1,
                    ),
                },
            ),
        )
        integration = apigw.LambdaIntegration(self.api_function, allow_test_invoke=False)
        options = self._method_options(api)
        run_id = {"method.request.path.runId": True}

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
        methods = [
            method(runs, "POST", models={"application/json": start_model}),
            method(run, "GET", parameters=run_id),
            method(run.add_resource("resume"), "POST", parameters=run_id),
            method(run.add_resource("cancel"), "POST", parameters=run_id),
            method(api.root.add_resource("openapi.json"), "GET"),
        ]
        self._api_acknowledgments(api, methods)
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

    def _api_acknowledgments(self, api: apigw.RestApi, methods: list[apigw.Method]) -> None:
        _acknowledge(
            api.deployment_stage,
            "AwsSolutions-APIG3",
            "No WAF web ACL by default: every method needs IAM/Cognito/API-key auth and the "
            "stage is throttled. Associate a web ACL with the stage where the API is public.",
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

    def _alarms(self) -> list[cloudwatch.Alarm]:
        prefix = self.settings.prefix
        five_minutes = Duration.minutes(5)
        alarms = [
            cloudwatch.Alarm(
                self,
                "DeadLetterQueueNotEmpty",
                alarm_name=f"{prefix}-dlq-not-empty",
                alarm_description="Jobs exhausted their retries and wait in the dead-letter queue",
                metric=self.dead_letter_queue.metric_approximate_number_of_messages_visible(
                    period=Duration.minutes(1), statistic="Maximum"
                ),
                threshold=0,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=1,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
            cloudwatch.Alarm(
                self,
                "WorkerErrors",
                alarm_name=f"{prefix}-worker-errors",
                alarm_description="Worker invocations failed as a whole (crash or timeout); "
                "single failed jobs are reported per message and do not count",
                metric=self.worker.metric_errors(period=five_minutes, statistic="Sum"),
                threshold=0,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=1,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
            cloudwatch.Alarm(
                self,
                "OldestJobAge",
                alarm_name=f"{prefix}-oldest-job-age",
                alarm_description="Jobs wait in the queue longer than "
                f"{self.settings.oldest_message_alarm_seconds} s: workers are behind or failing",
                metric=self.queue.metric_approximate_age_of_oldest_message(
                    period=five_minutes, statistic="Maximum"
                ),
                threshold=self.settings.oldest_message_alarm_seconds,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=1,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
            cloudwatch.Alarm(
                self,
                "ReconcilerErrors",
                alarm_name=f"{prefix}-reconciler-errors",
                alarm_description="The reconciler failed: stalled runs are not being resumed",
                metric=self.reconciler.metric_errors(period=five_minutes, statistic="Sum"),
                threshold=0,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=1,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
        ]
        if self.settings.alarm_topic_arn:
            topic = sns.Topic.from_topic_arn(self, "AlarmTopic", self.settings.alarm_topic_arn)
            for alarm in alarms:
                alarm.add_alarm_action(cloudwatch_actions.SnsAction(topic))
        return alarms

    def _dashboard(self) -> None:
        def graph(title: str, *metrics: cloudwatch.IMetric) -> cloudwatch.GraphWidget:
            return cloudwatch.GraphWidget(title=title, left=list(metrics), width=8)

        minute = Duration.minutes(1)
        dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=f"{self.settings.prefix}-dashboard"
        )
        dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(alarms=list(self.alarms), width=24, height=3),
        )
        dashboard.add_widgets(
            graph(
                "Job queue",
                self.queue.metric_approximate_number_of_messages_visible(period=minute),
                self.queue.metric_approximate_number_of_messages_not_visible(period=minute),
                self.dead_letter_queue.metric_approximate_number_of_messages_visible(
                    period=minute, label="Dead letters"
                ),
            ),
            graph(
                "Oldest job age (s)",
                self.queue.metric_approximate_age_of_oldest_message(period=minute),
            ),
            graph(
                "Worker",
                self.worker.metric_invocations(period=minute),
                self.worker.metric_errors(period=minute),
                self.worker.metric_throttles(period=minute),
            ),
        )
        dashboard.add_widgets(
            graph("Worker duration", self.worker.metric_duration(period=minute)),
            graph(
                "API",
                self.api.metric_count(period=minute),
                self.api.metric_client_error(period=minute),
                self.api.metric_server_error(period=minute),
            ),
            graph("API latency", self.api.metric_latency(period=minute)),
        )

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
        }
        for output_id, (value, description) in outputs.items():
            CfnOutput(self, output_id, value=value, description=description)
