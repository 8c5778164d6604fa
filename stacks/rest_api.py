"""The REST API in front of the API function: routes, auth, resource policy, WAF, access logs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aws_cdk import Aws, CfnOutput, Duration
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_wafv2 as wafv2

from flowcraft_core.api_requests import MAX_ID_LENGTH, StartRunRequest

from .parts import StackParts, acknowledge

#: Per-IP requests per 5 minutes the WAF rate rule allows (flowcraft:waf).
WAF_RATE_LIMIT_PER_5_MINUTES = 3000
STAGE_NAME = "prod"
#: The webhook route in resource-policy form (any stage, runs, nodes).
WEBHOOK_RESOURCE = "execute-api:/*/POST/runs/*/webhooks/*"
#: Every route of the API, in resource-policy form.
EVERY_ROUTE = "execute-api:/*"
#: The required ``runId`` path parameter of every route under ``/runs/{runId}``.
RUN_ID: dict[str, bool] = {"method.request.path.runId": True}


def start_run_schema() -> dict[str, Any]:
    """The gateway's StartRun model, generated from the function's request model (so its length
    limits and run-id pattern cannot drift), in the JSON Schema draft 4 API Gateway reads.
    Unknown fields are left to the function, whose answer names them."""
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
#: message), with the model's own limits.
BAD_REQUEST_BODY: dict[str, str] = {
    "message": "$message",
    "detail": f"POST /runs takes a JSON object: blueprintId (1-{MAX_ID_LENGTH} characters, "
    f"required), context (object), runId (1-{MAX_ID_LENGTH} letters, digits or . _ : -)",
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


class RestApi(StackParts):
    """Routes, authorization, resource policy, WAF and the access-log metric of the API."""

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
            deploy_options=self._stage_options(access_logs),
        )
        _add_bad_request_response(api)
        methods, webhook = self._routes(api)
        self.web_acl = self._web_acl(api) if settings.waf else None
        self._api_acknowledgments(api, methods, webhook)
        # RestApi adds an "Endpoint" output with a generated id; the stack's ApiUrl replaces it.
        api.node.try_remove_child("Endpoint")
        if settings.api_auth == "api_key":
            self._usage_plan(api)
        return api

    def _stage_options(self, access_logs: logs.ILogGroup) -> apigw.StageOptions:
        """The one stage: JSON access logs, throttling, error-level execution logs."""
        settings = self.settings
        return apigw.StageOptions(
            stage_name=STAGE_NAME,
            access_log_destination=apigw.LogGroupLogDestination(access_logs),
            access_log_format=apigw.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FIELDS)),
            throttling_rate_limit=settings.api_throttle_rate,
            throttling_burst_limit=settings.api_throttle_burst,
            logging_level=apigw.MethodLoggingLevel.ERROR,
            data_trace_enabled=False,  # would log request and response bodies
            tracing_enabled=settings.tracing,
        )

    def _usage_plan(self, api: apigw.RestApi) -> None:
        """API-key mode: one key on a usage plan throttled like the stage."""
        settings = self.settings
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

    def _routes(self, api: apigw.RestApi) -> tuple[list[apigw.Method], apigw.Method]:
        """Every route on the API function: the signed ones (returned first, each with the
        stack's authorization) and the token-checked webhook (returned second)."""
        validator = api.add_request_validator(
            "RequestValidator",
            validate_request_body=True,
            validate_request_parameters=True,
        )
        start_model = _start_run_model(api)
        add = _Methods(
            integration=apigw.LambdaIntegration(self.api_function, allow_test_invoke=False),
            validator=validator,
            options=self._method_options(api),
        )
        runs = api.root.add_resource("runs")
        run = runs.add_resource("{runId}")
        methods = _signed_methods(add, api, runs, run, start_model)
        webhook = add.webhook(run.add_resource("webhooks").add_resource("{nodeId}"))
        return methods, webhook

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
        statements = [
            iam.PolicyStatement(
                actions=["execute-api:Invoke"],
                principals=[iam.AnyPrincipal()],
                resources=[WEBHOOK_RESOURCE],
            ),
            iam.PolicyStatement(
                actions=["execute-api:Invoke"],
                principals=self._api_invokers(),
                resources=[EVERY_ROUTE],
            ),
        ]
        if settings.api_allowed_principals:
            statements.append(_deny_other_principals(settings.api_allowed_principals))
        if settings.api_source_vpce:
            statements.append(
                iam.PolicyStatement(
                    effect=iam.Effect.DENY,
                    actions=["execute-api:Invoke"],
                    principals=[iam.AnyPrincipal()],
                    resources=[EVERY_ROUTE],
                    conditions={"StringNotEquals": {"aws:SourceVpce": settings.api_source_vpce}},
                )
            )
        return iam.PolicyDocument(statements=statements)

    def _api_invokers(self) -> list[iam.IPrincipal]:
        """The principals the resource policy allows on every route.

        With IAM auth the allow names accounts, never "*": an account principal delegates to
        the callers' own identity policies, so execute-api:Invoke stays required. API keys and
        Cognito tokens carry no IAM principal; there the authorizer is the check.
        """
        if self.settings.api_auth != "iam":
            return [iam.AnyPrincipal()]
        trusted = {Aws.ACCOUNT_ID} | {
            p if not p.startswith("arn:") else p.split(":")[4]
            for p in self.settings.api_allowed_principals
        }
        return [iam.AccountPrincipal(account) for account in sorted(trusted)]

    def _web_acl(self, api: apigw.RestApi) -> wafv2.CfnWebACL:
        """AWS managed rules (common, known bad inputs, IP reputation) and a per-IP rate limit,
        in front of the stage. The common rule set's 8 KB body limit only counts: run contexts
        and resume outputs may be larger (the API validates sizes itself)."""
        prefix = self.settings.prefix
        acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            name=f"{prefix}-api",
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=_visibility(prefix, "api"),
            rules=[
                _rate_per_ip_rule(prefix),
                _managed_rule(prefix, 1, "AWSManagedRulesAmazonIpReputationList"),
                _managed_rule(prefix, 2, "AWSManagedRulesCommonRuleSet", ["SizeRestrictions_BODY"]),
                _managed_rule(prefix, 3, "AWSManagedRulesKnownBadInputsRuleSet"),
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
            acknowledge(
                api.deployment_stage,
                "AwsSolutions-APIG3",
                "No WAF web ACL by default: every method but the token-checked webhook needs "
                "IAM/Cognito/API-key auth and the stage is throttled. flowcraft:waf=true adds "
                "one where the API is public.",
            )
        for rule_id in ("AwsSolutions-APIG4", "AwsSolutions-COG4"):
            acknowledge(
                webhook,
                rule_id,
                "POST /runs/{runId}/webhooks/{nodeId} is called by outside systems without AWS "
                "credentials: the function checks the node's own secret token (header or query "
                "string) and answers 403 when it is wrong; the stage is throttled.",
            )
        if self.settings.api_auth != "cognito":
            for method in methods:
                acknowledge(
                    method,
                    "AwsSolutions-COG4",
                    f"Authorization is {self.settings.api_auth} (flowcraft:apiAuth); a Cognito "
                    "authorizer is the opt-in alternative for end-user callers.",
                )
        if self.settings.api_auth == "api_key":
            for method in methods:
                acknowledge(
                    method,
                    "AwsSolutions-APIG4",
                    "flowcraft:apiAuth=api_key chosen explicitly: methods require an API key "
                    "from the stack's usage plan instead of an authorizer.",
                )
        cloudwatch_role = api.node.try_find_child("CloudWatchRole")
        if cloudwatch_role is not None:
            acknowledge(
                cloudwatch_role,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AmazonAPIGatewayPushToCloudWatchLogs]",
                "API Gateway's account-level logging role; AWS maintains this policy for exactly "
                "this purpose and access logs cannot be written without it.",
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


def _add_bad_request_response(api: apigw.RestApi) -> None:
    """The answer to a body the StartRun model refuses (``BAD_REQUEST_BODY``).

    Gateway response templates get plain variable substitution, not VTL: no $util to escape
    the validator's message (it can contain quotes), so the detail is static.
    """
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


def _start_run_model(api: apigw.RestApi) -> apigw.Model:
    """The StartRun model, its schema generated from the function's own request model."""
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
    return start_model


@dataclass(frozen=True)
class _Methods:
    """Adds methods that call the API function and have their requests validated first."""

    integration: apigw.LambdaIntegration
    validator: apigw.RequestValidator
    options: apigw.MethodOptions

    def signed(
        self,
        resource: apigw.IResource,
        verb: str,
        *,
        parameters: dict[str, bool] | None = None,
        models: dict[str, apigw.IModel] | None = None,
    ) -> apigw.Method:
        """A method under the stack's authorization (IAM, API key or Cognito)."""
        return resource.add_method(
            verb,
            self.integration,
            authorization_type=self.options.authorization_type,
            authorizer=self.options.authorizer,
            api_key_required=self.options.api_key_required,
            request_validator=self.validator,
            request_parameters=parameters,
            request_models=models,
        )

    def webhook(self, resource: apigw.IResource) -> apigw.Method:
        """Webhooks: the caller is an outside system with no AWS identity; the function checks
        the node's own token (header or query string) and answers 403 when it is wrong."""
        return resource.add_method(
            "POST",
            self.integration,
            authorization_type=apigw.AuthorizationType.NONE,
            api_key_required=False,
            request_validator=self.validator,
            request_parameters={**RUN_ID, "method.request.path.nodeId": True},
        )


def _signed_methods(
    add: _Methods,
    api: apigw.RestApi,
    runs: apigw.Resource,
    run: apigw.Resource,
    start_model: apigw.Model,
) -> list[apigw.Method]:
    """The routes callers sign: the runs collection, one run and its actions, the spec."""
    page = {
        "method.request.querystring.limit": False,
        "method.request.querystring.nextToken": False,
    }
    # "$default" applies the model to every content type: a body sent as text/plain or
    # form data is validated like JSON (and refused), never passed to the function unchecked.
    return [
        add.signed(runs, "POST", models={"application/json": start_model, "$default": start_model}),
        add.signed(
            runs,
            "GET",
            parameters={
                "method.request.querystring.status": False,
                "method.request.querystring.blueprintId": False,
                **page,
            },
        ),
        add.signed(run, "GET", parameters=RUN_ID),
        add.signed(run.add_resource("nodes"), "GET", parameters={**RUN_ID, **page}),
        add.signed(run.add_resource("resume"), "POST", parameters=RUN_ID),
        add.signed(run.add_resource("cancel"), "POST", parameters=RUN_ID),
        add.signed(run.add_resource("redrive"), "POST", parameters=RUN_ID),
        add.signed(api.root.add_resource("openapi.json"), "GET"),
    ]


def _deny_other_principals(allowed: tuple[str, ...]) -> iam.PolicyStatement:
    """Deny every route but the webhook to any principal not in ``apiAllowedPrincipals``."""
    arns = [p for p in allowed if p.startswith("arn:")]
    accounts = [p for p in allowed if not p.startswith("arn:")]
    conditions: dict[str, Any] = {}
    if arns:
        conditions["StringNotLike"] = {"aws:PrincipalArn": arns}
    if accounts:
        conditions["StringNotEquals"] = {"aws:PrincipalAccount": accounts}
    return iam.PolicyStatement(
        effect=iam.Effect.DENY,
        actions=["execute-api:Invoke"],
        principals=[iam.AnyPrincipal()],
        not_resources=[WEBHOOK_RESOURCE],
        conditions=conditions,
    )


def _visibility(prefix: str, name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True,
        metric_name=f"{prefix}-{name}",
        sampled_requests_enabled=True,
    )


def _rate_per_ip_rule(prefix: str) -> wafv2.CfnWebACL.RuleProperty:
    """Block an IP that sends more than ``WAF_RATE_LIMIT_PER_5_MINUTES`` requests."""
    return wafv2.CfnWebACL.RuleProperty(
        name="rate-per-ip",
        priority=0,
        action=wafv2.CfnWebACL.RuleActionProperty(block={}),
        statement=wafv2.CfnWebACL.StatementProperty(
            rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                aggregate_key_type="IP", limit=WAF_RATE_LIMIT_PER_5_MINUTES
            )
        ),
        visibility_config=_visibility(prefix, "rate-per-ip"),
    )


def _managed_rule(
    prefix: str, priority: int, name: str, overrides: list[str] | None = None
) -> wafv2.CfnWebACL.RuleProperty:
    """An AWS managed rule group; the ``overrides`` rules only count instead of blocking."""
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
        visibility_config=_visibility(prefix, name),
    )
