"""The CDK stack: resources and settings, least-privilege IAM, cdk-nag, cfn-lint, bundling.

Synthesis costs seconds (jsii starts a Node process), so each configuration is synthesized once
per module and every test reads the same template. The apps come from ``app.build_app`` with
the context of ``cdk.json``, exactly as the CLI builds them, AwsSolutions checks included: an
unacknowledged cdk-nag finding makes the fixture itself fail. Dependency bundling (pip) is off
here; the bundler is tested on its own below, without the network.

Five configurations: ``default`` (cdk.json as it is) and four variants, each turning on a
different set of options (API keys + WAF, Cognito + private API, FIFO + throwaway, tracing +
principal allow-list). Every one must pass cdk-nag, cfn-lint and the checkov review.
"""

from __future__ import annotations

import os

# jsii's Node child reads these when aws_cdk is first imported: silence the Node 20 banner.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template
from cdk_nag import AwsSolutionsChecks

import app as cdk_app
from flowcraft_core.aws.schema import (
    DEFAULT_RUN_HORIZON_DAYS,
    JOB_QUEUE,
    PAYLOAD_BUCKET,
    STATUS_TABLE,
    TABLES,
    TTL_ATTRIBUTE,
)
from flowcraft_core.routes import ROUTES as API_ROUTES
from stacks import FlowcraftStack, bundling, sam_env
from stacks.functions import GRANT_RESOURCES, GRANTS
from stacks.settings import Settings, StackSettingsError

ROOT = Path(__file__).resolve().parents[1]
CDK_JSON = json.loads((ROOT / "cdk.json").read_text())

ENV_VARS = {
    "FLOWCRAFT_QUEUE_URL",
    "FLOWCRAFT_CONTEXT_TABLE",
    "FLOWCRAFT_STATUS_TABLE",
    "FLOWCRAFT_COORDINATION_TABLE",
    "FLOWCRAFT_PAYLOAD_BUCKET",
    "FLOWCRAFT_RETENTION_DAYS",
    "FLOWCRAFT_APP",
    "FLOWCRAFT_STALLED_SECONDS",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
}
EVENT_SOURCE_ACTIONS = {
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes",
    "sqs:GetQueueUrl",
}
LOG_ACTIONS = {"logs:CreateLogStream", "logs:PutLogEvents"}
WEBHOOK = ("POST", "/runs/{runId}/webhooks/{nodeId}")
ROUTES = {(route.method, route.path) for route in API_ROUTES}
assert WEBHOOK in ROUTES and not next(r for r in API_ROUTES if r[:2] == WEBHOOK).signed
ALERTS_ARN = "arn:aws:sns:eu-west-1:123456789012:alerts"
VPCE = "vpce-0123456789abcdef0"
OPS_ROLE = "arn:aws:iam::123456789012:role/flowcraft-ops-*"
#: The four variants: each turns on options the default leaves off.
VARIANTS: dict[str, dict[str, str]] = {
    "api_key": {
        "prefix": "flowcraft-staging",
        "apiAuth": "api_key",  # strings, as `cdk deploy -c key=value` passes them
        "waf": "true",
        "architecture": "x86_64",
    },
    "cognito": {
        "prefix": "flowcraft-cog",
        "apiAuth": "cognito",
        "cognitoUserPoolArn": "arn:aws:cognito-idp:eu-west-1:123456789012:userpool/eu-west-1_abc",
        "apiSourceVpce": VPCE,
    },
    "fifo": {
        "prefix": "flowcraft-fifo",
        "fifo": "true",
        "removalPolicy": "destroy",
        "deletionProtection": "false",
        "alarmTopicArn": ALERTS_ARN,
        "alarmEmail": "ops@example.com",
        "dashboard": "false",
        "reservedConcurrency": "false",
    },
    "tracing": {
        "prefix": "flowcraft-trace",
        "tracing": "true",
        "apiAllowedPrincipals": f"123456789012,{OPS_ROLE}",
        "workerMaxConcurrency": "25",
        "workerReservedConcurrency": "30",
        "retentionDays": "7",
    },
}


def context(**overrides: Any) -> dict[str, Any]:
    """cdk.json's context (feature flags included) without pip, plus ``flowcraft:`` overrides."""
    values = dict(CDK_JSON["context"])
    values["flowcraft:bundleDependencies"] = False
    values.update({f"flowcraft:{key}": value for key, value in overrides.items()})
    return values


@dataclass
class Synth:
    stack: FlowcraftStack
    template: Template
    raw: dict[str, Any]
    path: Path

    def resources(self, kind: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.raw["Resources"].items() if v["Type"] == kind}

    def logical_id(self, construct: Any) -> str:
        return str(self.stack.get_logical_id(construct.node.default_child))

    def arn(self, construct: Any) -> dict[str, Any]:
        return {"Fn::GetAtt": [self.logical_id(construct), "Arn"]}


def synthesize(outdir: Path, **overrides: Any) -> Synth:
    app, stack = cdk_app.build_app(context(**overrides), outdir=str(outdir))
    assembly = app.synth()  # runs AwsSolutionsChecks: raises on any unacknowledged finding
    artifact = assembly.get_stack_by_name(stack.stack_name)
    return Synth(
        stack=stack,
        template=Template.from_json(artifact.template),
        raw=artifact.template,
        path=Path(artifact.template_full_path),
    )


@pytest.fixture(scope="module")
def default(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """The stack as ``cdk deploy`` builds it from cdk.json."""
    return synthesize(tmp_path_factory.mktemp("cdk-default"))


@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Synth]:
    return {
        name: synthesize(tmp_path_factory.mktemp(f"cdk-{name}"), **overrides)
        for name, overrides in VARIANTS.items()
    }


@pytest.fixture(scope="module")
def every(default: Synth, variants: dict[str, Synth]) -> dict[str, Synth]:
    return {"default": default, **variants}


# --------------------------------------------------------------------------------- queues


def test_job_queue_redrives_to_its_dlq(default: Synth) -> None:
    stack = default.stack
    default.template.has_resource_properties(
        "AWS::SQS::Queue",
        {
            "QueueName": JOB_QUEUE.name("flowcraft"),
            "RedrivePolicy": {
                "deadLetterTargetArn": default.arn(stack.dead_letter_queue),
                "maxReceiveCount": JOB_QUEUE.max_receive_count,
            },
            "MessageRetentionPeriod": JOB_QUEUE.retention_seconds,
            "SqsManagedSseEnabled": True,
        },
    )
    default.template.has_resource_properties(
        "AWS::SQS::Queue",
        {
            "QueueName": JOB_QUEUE.dlq_name("flowcraft"),
            "MessageRetentionPeriod": JOB_QUEUE.dlq_retention_seconds,
            "SqsManagedSseEnabled": True,
        },
    )
    assert len(default.resources("AWS::SQS::Queue")) == 2


def test_visibility_timeout_covers_six_worker_timeouts(default: Synth) -> None:
    worker_timeout = default.raw["Resources"][default.logical_id(default.stack.worker)][
        "Properties"
    ]["Timeout"]
    queue = default.raw["Resources"][default.logical_id(default.stack.queue)]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * worker_timeout
    assert queue["VisibilityTimeout"] == max(JOB_QUEUE.visibility_timeout_seconds, 6 * 60)


def test_queues_refuse_plain_http(default: Synth) -> None:
    policies = default.resources("AWS::SQS::QueuePolicy")
    assert len(policies) == 2
    for policy in policies.values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in statements
        )


# --------------------------------------------------------------------------------- tables


@pytest.mark.parametrize("spec", TABLES, ids=lambda spec: spec.role)
def test_table_matches_schema(default: Synth, spec: Any) -> None:
    resource = next(
        r
        for r in default.resources("AWS::DynamoDB::Table").values()
        if r["Properties"]["TableName"] == spec.name("flowcraft")
    )
    properties = resource["Properties"]
    assert properties["KeySchema"] == [
        {"AttributeName": spec.partition_key.name, "KeyType": "HASH"}
    ]
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert properties["TimeToLiveSpecification"] == {
        "AttributeName": TTL_ATTRIBUTE,
        "Enabled": True,
    }
    assert properties["DeletionProtectionEnabled"] is True
    assert resource["DeletionPolicy"] == "Retain"
    # Every index of the spec, whatever the schema adds later (names never hard-coded here).
    indexes = {i["IndexName"]: i for i in properties.get("GlobalSecondaryIndexes", [])}
    assert set(indexes) == {index.name for index in spec.indexes}
    for index in spec.indexes:
        key_schema = [{"AttributeName": index.partition_key.name, "KeyType": "HASH"}]
        if index.sort_key:
            key_schema.append({"AttributeName": index.sort_key.name, "KeyType": "RANGE"})
        assert indexes[index.name]["KeySchema"] == key_schema
        assert indexes[index.name]["Projection"] == {"ProjectionType": index.projection}


def test_throwaway_stack_tables_can_be_deleted(variants: dict[str, Synth]) -> None:
    fifo = variants["fifo"]
    for resource in fifo.resources("AWS::DynamoDB::Table").values():
        assert resource["Properties"]["DeletionProtectionEnabled"] is False
        assert resource["DeletionPolicy"] == "Delete"


# ------------------------------------------------------------------------- payload bucket


def payload_bucket(synth: Synth) -> dict[str, Any]:
    return synth.raw["Resources"][synth.logical_id(synth.stack.payload_bucket)]


def test_payload_bucket_is_private_encrypted_and_expires_payloads(default: Synth) -> None:
    bucket = payload_bucket(default)
    properties = bucket["Properties"]
    assert "BucketName" not in properties  # CloudFormation names it: bucket names are global
    assert properties["BucketEncryption"] == {
        "ServerSideEncryptionConfiguration": [
            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
        ]
    }
    assert properties["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert "VersioningConfiguration" not in properties
    assert properties["LifecycleConfiguration"]["Rules"] == [
        {
            "Id": "expire-run-payloads",
            "Prefix": PAYLOAD_BUCKET.key_prefix,
            "ExpirationInDays": PAYLOAD_BUCKET.expiry_days,
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
            "Status": "Enabled",
        }
    ]
    assert bucket["DeletionPolicy"] == "Retain"  # as the tables
    policy = next(iter(default.resources("AWS::S3::BucketPolicy").values()))["Properties"]
    assert policy["Bucket"] == {"Ref": default.logical_id(default.stack.payload_bucket)}
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in policy["PolicyDocument"]["Statement"]
    )


def test_payload_expiry_follows_the_retention_setting(variants: dict[str, Synth]) -> None:
    tracing = variants["tracing"]
    rule = payload_bucket(tracing)["Properties"]["LifecycleConfiguration"]["Rules"][0]
    assert rule["ExpirationInDays"] == 7 + DEFAULT_RUN_HORIZON_DAYS
    for function in tracing.resources("AWS::Lambda::Function").values():
        assert function["Properties"]["Environment"]["Variables"]["FLOWCRAFT_RETENTION_DAYS"] == "7"


def test_throwaway_stack_bucket_is_emptied_and_deleted(variants: dict[str, Synth]) -> None:
    fifo = variants["fifo"]
    assert payload_bucket(fifo)["DeletionPolicy"] == "Delete"
    assert len(fifo.resources("Custom::S3AutoDeleteObjects")) == 1


# ------------------------------------------------------------------------------ functions


@pytest.mark.parametrize("role", ["worker", "reconciler", "api"])
def test_function_runtime_handler_and_environment(default: Synth, role: str) -> None:
    default.template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "FunctionName": f"flowcraft-{role}",
            "Handler": f"handlers.{role}.handler",
            "Runtime": "python3.13",
            "Architectures": ["arm64"],
            "LoggingConfig": {"LogGroup": Match.any_value()},
            "Environment": {
                "Variables": Match.object_like(
                    {
                        "FLOWCRAFT_APP": "workflows",
                        "FLOWCRAFT_STALLED_SECONDS": "300",
                        "FLOWCRAFT_RETENTION_DAYS": "30",
                        "POWERTOOLS_SERVICE_NAME": "flowcraft",
                        "POWERTOOLS_METRICS_NAMESPACE": "Flowcraft",
                        "POWERTOOLS_LOG_LEVEL": "INFO",
                    }
                )
            },
        },
    )


def test_every_function_gets_every_variable(default: Synth) -> None:
    functions = default.resources("AWS::Lambda::Function")
    assert len(functions) == 3
    stack = default.stack
    for function in functions.values():
        variables = function["Properties"]["Environment"]["Variables"]
        assert set(variables) >= ENV_VARS
        assert variables["FLOWCRAFT_QUEUE_URL"] == {"Ref": default.logical_id(stack.queue)}
        assert variables["FLOWCRAFT_PAYLOAD_BUCKET"] == {
            "Ref": default.logical_id(stack.payload_bucket)
        }
        for role in ("context", "status", "coordination"):
            assert variables[f"FLOWCRAFT_{role.upper()}_TABLE"] == {
                "Ref": default.logical_id(stack.tables[role])
            }


def test_another_copy_emits_metrics_in_its_own_namespace(variants: dict[str, Synth]) -> None:
    for function in variants["api_key"].resources("AWS::Lambda::Function").values():
        variables = function["Properties"]["Environment"]["Variables"]
        assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "Flowcraft/flowcraft-staging"


def test_log_groups_are_explicit_with_retention(default: Synth) -> None:
    default.template.resource_count_is("AWS::Logs::LogGroup", 4)  # 3 functions + API access
    default.template.all_resources_properties("AWS::Logs::LogGroup", {"RetentionInDays": 30})


def test_worker_consumes_the_queue_with_partial_batch_failures(default: Synth) -> None:
    default.template.resource_count_is("AWS::Lambda::EventSourceMapping", 1)
    default.template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "EventSourceArn": default.arn(default.stack.queue),
            "FunctionName": {"Ref": default.logical_id(default.stack.worker)},
            "BatchSize": 10,
            "MaximumBatchingWindowInSeconds": 1,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "ScalingConfig": {"MaximumConcurrency": 20},
        },
    )


def reserved(synth: Synth) -> dict[str, Any]:
    return {
        role: synth.raw["Resources"][synth.logical_id(function)]["Properties"].get(
            "ReservedConcurrentExecutions"
        )
        for role, function in synth.stack.functions.items()
    }


def test_reserved_concurrency_isolates_the_functions(
    default: Synth, variants: dict[str, Synth]
) -> None:
    # The worker reserves what its event source may start at once; the reconciler runs alone.
    assert reserved(default) == {"worker": 20, "reconciler": 1, "api": 10}
    tracing = variants["tracing"]
    assert reserved(tracing) == {"worker": 30, "reconciler": 1, "api": 10}
    mapping = next(iter(tracing.resources("AWS::Lambda::EventSourceMapping").values()))
    assert mapping["Properties"]["ScalingConfig"] == {"MaximumConcurrency": 25}
    assert reserved(variants["fifo"]) == {"worker": None, "reconciler": None, "api": None}


def test_reconciler_runs_on_a_schedule(default: Synth) -> None:
    default.template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "ScheduleExpression": "rate(1 minute)",
            "State": "ENABLED",
            "Targets": [Match.object_like({"Arn": default.arn(default.stack.reconciler)})],
        },
    )
    default.template.has_resource_properties(
        "AWS::Lambda::Permission",
        {"Principal": "events.amazonaws.com", "Action": "lambda:InvokeFunction"},
    )


# ------------------------------------------------------------------------------------ IAM


def policy_actions(synth: Synth, role: str) -> dict[str, set[str]]:
    """Action -> resources (as JSON text) of the one policy attached to a function's role."""
    role_id = synth.logical_id(synth.stack.functions[role].role)
    policies = [
        p
        for p in synth.resources("AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
    ]
    assert len(policies) == 1
    actions: dict[str, set[str]] = {}
    for statement in policies[0]["Properties"]["PolicyDocument"]["Statement"]:
        assert statement["Effect"] == "Allow"
        names = statement["Action"]
        resources = statement["Resource"]
        for name in [names] if isinstance(names, str) else names:
            actions.setdefault(name, set()).update(
                json.dumps(r, sort_keys=True)
                for r in (resources if isinstance(resources, list) else [resources])
            )
    return actions


def expected_grants(synth: Synth, role: str) -> dict[str, set[str]]:
    """Action -> resources, straight from the GRANTS table."""
    expected: dict[str, set[str]] = {}
    for resource, actions in GRANTS[role].items():
        arns = synth.stack.resolve(synth.stack.grant_resources(resource))
        for action in actions:
            expected.setdefault(action, set()).update(json.dumps(a, sort_keys=True) for a in arns)
    return expected


def test_grant_table_names_known_resources_only() -> None:
    assert set(GRANTS) == {"worker", "reconciler", "api"}
    for rows in GRANTS.values():
        assert set(rows) <= set(GRANT_RESOURCES)
        for actions in rows.values():
            assert len(set(actions)) == len(actions)
            assert all(":" in a and "*" not in a for a in actions)


@pytest.mark.parametrize("role", ["worker", "reconciler", "api"])
def test_each_function_gets_exactly_its_grants(default: Synth, role: str) -> None:
    actions = policy_actions(default, role)
    expected = expected_grants(default, role)
    extra = LOG_ACTIONS | (EVENT_SOURCE_ACTIONS if role == "worker" else set())
    assert set(actions) == set(expected) | extra
    for action, resources in expected.items():
        if action in extra:  # the event source grants ChangeMessageVisibility on the queue too
            assert resources <= actions[action]
        else:
            assert actions[action] == resources, action


def test_grants_follow_what_each_function_calls(default: Synth) -> None:
    """The calls the engine makes (DESIGN: run heads and node items in the context table,
    large values in S3); spelled out so a change to GRANTS is a deliberate one."""
    stack = default.stack

    def arn(resource: str) -> set[str]:
        return {
            json.dumps(a, sort_keys=True) for a in stack.resolve(stack.grant_resources(resource))
        }

    context, status, coordination = arn("context"), arn("status"), arn("coordination")
    indexes, payloads, queue = arn("status/indexes"), arn("payloads"), arn("queue")
    assert indexes == {
        json.dumps(
            {"Fn::Join": ["", [default.arn(stack.tables["status"]), f"/index/{i.name}"]]},
            sort_keys=True,
        )
        for i in STATUS_TABLE.indexes
    }
    assert payloads == {
        json.dumps(
            {
                "Fn::Join": [
                    "",
                    [default.arn(stack.payload_bucket), f"/{PAYLOAD_BUCKET.key_prefix}*"],
                ]
            },
            sort_keys=True,
        )
    }
    worker = policy_actions(default, "worker")
    api = policy_actions(default, "api")
    reconciler = policy_actions(default, "reconciler")
    item = ["BatchGetItem", "PutItem", "UpdateItem"]
    for actions in (worker, api, reconciler):
        for name in item:
            assert context <= actions[f"dynamodb:{name}"]
        assert "dynamodb:Scan" not in actions
        assert "dynamodb:BatchWriteItem" not in actions
        assert "s3:DeleteObject" not in actions
        assert (
            coordination.isdisjoint(actions.get("dynamodb:PutItem", set())) or actions is reconciler
        )
    assert worker["dynamodb:UpdateItem"] == context | status
    for actions in (worker, api, reconciler):  # nothing the code does not call
        assert "dynamodb:GetItem" not in actions and "dynamodb:ConditionCheckItem" not in actions
    assert "dynamodb:Query" not in worker and "dynamodb:DeleteItem" not in worker
    assert worker["s3:PutObject"] == worker["s3:GetObject"] == payloads
    assert api["dynamodb:Query"] == status | indexes
    assert api["s3:PutObject"] == payloads
    assert "dynamodb:DeleteItem" not in api
    assert reconciler["dynamodb:Query"] == indexes
    assert reconciler["dynamodb:DeleteItem"] == coordination
    assert reconciler["dynamodb:PutItem"] == context | coordination
    assert reconciler["dynamodb:UpdateItem"] == context | status
    assert "s3:PutObject" not in reconciler and reconciler["s3:GetObject"] == payloads
    for actions in (api, reconciler):
        assert actions["sqs:SendMessage"] == queue
        assert "sqs:ReceiveMessage" not in actions


# Start checkov and cfn-lint early: their tests below collect the results.
@pytest.mark.usefixtures("checkov_run", "cfn_lint_run")
def test_no_wildcard_actions_anywhere(every: dict[str, Synth]) -> None:
    for synth in every.values():
        for policy in synth.resources("AWS::IAM::Policy").values():
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                names = statement["Action"]
                for name in [names] if isinstance(names, str) else names:
                    assert "*" not in name, name


def test_functions_do_not_use_managed_policies(default: Synth) -> None:
    lambda_roles = [
        role
        for role in default.resources("AWS::IAM::Role").values()
        if "lambda.amazonaws.com" in json.dumps(role["Properties"]["AssumeRolePolicyDocument"])
    ]
    assert len(lambda_roles) == 3
    assert all("ManagedPolicyArns" not in role["Properties"] for role in lambda_roles)
    assert all("Policies" not in role["Properties"] for role in lambda_roles)


# ------------------------------------------------------------------------------------ API


def routes(synth: Synth) -> dict[tuple[str, str], dict[str, Any]]:
    """(verb, path) -> method properties, with paths rebuilt from the resource tree."""
    resources = synth.resources("AWS::ApiGateway::Resource")

    def path(ref: Any) -> str:
        if not isinstance(ref, dict) or "Ref" not in ref:
            return ""  # the root resource (Fn::GetAtt RootResourceId)
        props = resources[ref["Ref"]]["Properties"]
        return f"{path(props['ParentId'])}/{props['PathPart']}"

    return {
        (m["Properties"]["HttpMethod"], path(m["Properties"]["ResourceId"])): m["Properties"]
        for m in synth.resources("AWS::ApiGateway::Method").values()
    }


def test_routes_use_iam_authorization_and_the_api_function(default: Synth) -> None:
    methods = routes(default)
    assert set(methods) == ROUTES
    function_arn = default.arn(default.stack.api_function)
    for route, method in methods.items():
        expected = "NONE" if route == WEBHOOK else "AWS_IAM"
        assert method["AuthorizationType"] == expected, route
        assert method["Integration"]["Type"] == "AWS_PROXY"
        assert function_arn in method["Integration"]["Uri"]["Fn::Join"][1]
        assert "RequestValidatorId" in method


def test_new_routes_declare_their_parameters(default: Synth) -> None:
    methods = routes(default)
    query = "method.request.querystring."
    assert methods[("GET", "/runs")]["RequestParameters"] == {
        f"{query}status": False,
        f"{query}blueprintId": False,
        f"{query}limit": False,
        f"{query}nextToken": False,
    }
    assert methods[("GET", "/runs/{runId}/nodes")]["RequestParameters"] == {
        "method.request.path.runId": True,
        f"{query}limit": False,
        f"{query}nextToken": False,
    }
    assert methods[("POST", "/runs/{runId}/redrive")]["RequestParameters"] == {
        "method.request.path.runId": True
    }
    assert methods[WEBHOOK]["RequestParameters"] == {
        "method.request.path.runId": True,
        "method.request.path.nodeId": True,
    }


def test_bodies_and_path_parameters_are_validated(default: Synth) -> None:
    default.template.has_resource_properties(
        "AWS::ApiGateway::RequestValidator",
        {"ValidateRequestBody": True, "ValidateRequestParameters": True},
    )
    methods = routes(default)
    models = methods[("POST", "/runs")]["RequestModels"]
    # "$default" validates bodies of every other content type with the same model.
    assert set(models) == {"application/json", "$default"}
    assert models["application/json"] == models["$default"]
    for route in [("GET", "/runs/{runId}"), ("POST", "/runs/{runId}/cancel")]:
        assert methods[route]["RequestParameters"] == {"method.request.path.runId": True}
    model = next(iter(default.resources("AWS::ApiGateway::Model").values()))["Properties"]
    assert model["Schema"]["required"] == ["blueprintId"]
    # A rejected body still gets JSON: messageString is substituted as a quoted string.
    response = next(iter(default.resources("AWS::ApiGateway::GatewayResponse").values()))
    assert response["Properties"]["ResponseType"] == "BAD_REQUEST_BODY"
    template = response["Properties"]["ResponseTemplates"]["application/json"]
    body = json.loads(template.replace("$context.error.messageString", '"Invalid request body"'))
    assert "blueprintId" in body["detail"]


def test_stage_has_access_logs_and_throttling(default: Synth) -> None:
    stage = next(iter(default.resources("AWS::ApiGateway::Stage").values()))["Properties"]
    access_logs = stage["AccessLogSetting"]
    assert json.loads(access_logs["Format"])["requestId"] == "$context.requestId"
    assert "Fn::Join" in access_logs["DestinationArn"]
    assert stage["MethodSettings"] == [
        {
            "HttpMethod": "*",
            "ResourcePath": "/*",
            "LoggingLevel": "ERROR",
            "DataTraceEnabled": False,
            "ThrottlingRateLimit": 50,
            "ThrottlingBurstLimit": 100,
        }
    ]
    default.template.resource_count_is("AWS::ApiGateway::Account", 1)  # logging role


def rest_api(synth: Synth) -> dict[str, Any]:
    return next(iter(synth.resources("AWS::ApiGateway::RestApi").values()))["Properties"]


def test_no_resource_policy_or_waf_by_default(default: Synth) -> None:
    assert "Policy" not in rest_api(default)
    assert rest_api(default)["EndpointConfiguration"] == {"Types": ["REGIONAL"]}
    default.template.resource_count_is("AWS::WAFv2::WebACL", 0)


def test_resource_policy_allows_only_listed_principals_but_webhooks(
    variants: dict[str, Synth],
) -> None:
    statements = rest_api(variants["tracing"])["Policy"]["Statement"]
    webhooks, allow, deny = statements
    assert webhooks["Principal"] == {"AWS": "*"}
    assert webhooks["Resource"] == "execute-api:/*/POST/runs/*/webhooks/*"
    # Accounts, never "*": IAM callers still need execute-api:Invoke in their own policies.
    assert allow["Effect"] == "Allow" and allow["Resource"] == "execute-api:/*"
    principals = json.dumps(allow["Principal"])
    assert '"AWS::AccountId"' in principals and ":iam::123456789012:root" in principals
    assert '"*"' not in principals
    assert deny == {
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Action": "execute-api:Invoke",
        "NotResource": "execute-api:/*/POST/runs/*/webhooks/*",
        "Condition": {
            "StringNotLike": {"aws:PrincipalArn": [OPS_ROLE]},
            "StringNotEquals": {"aws:PrincipalAccount": ["123456789012"]},
        },
    }


def test_source_vpc_endpoint_makes_the_api_private(variants: dict[str, Synth]) -> None:
    api = rest_api(variants["cognito"])
    assert api["EndpointConfiguration"] == {"Types": ["PRIVATE"]}
    allow, deny = api["Policy"]["Statement"]  # both allows merge: "*" for every route
    assert allow["Principal"] == {"AWS": "*"}  # Cognito: no IAM principal, the authorizer checks
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"StringNotEquals": {"aws:SourceVpce": VPCE}}


def test_waf_web_acl_guards_the_api_key_stage(variants: dict[str, Synth]) -> None:
    synth = variants["api_key"]
    acl = next(iter(synth.resources("AWS::WAFv2::WebACL").values()))["Properties"]
    assert acl["Scope"] == "REGIONAL"
    assert acl["DefaultAction"] == {"Allow": {}}
    rules = {rule["Name"]: rule for rule in acl["Rules"]}
    assert rules["rate-per-ip"]["Statement"]["RateBasedStatement"]["AggregateKeyType"] == "IP"
    assert {
        "AWSManagedRulesCommonRuleSet",
        "AWSManagedRulesKnownBadInputsRuleSet",
        "AWSManagedRulesAmazonIpReputationList",
    } <= set(rules)
    common = rules["AWSManagedRulesCommonRuleSet"]["Statement"]["ManagedRuleGroupStatement"]
    assert common["RuleActionOverrides"] == [
        {"Name": "SizeRestrictions_BODY", "ActionToUse": {"Count": {}}}
    ]
    association = next(iter(synth.resources("AWS::WAFv2::WebACLAssociation").values()))
    assert association["Properties"]["WebACLArn"] == {
        "Fn::GetAtt": [next(iter(synth.resources("AWS::WAFv2::WebACL"))), "Arn"]
    }
    assert "restapis" in json.dumps(association["Properties"]["ResourceArn"])


def test_outputs(default: Synth) -> None:
    assert set(default.raw["Outputs"]) == {
        "ApiUrl",
        "QueueUrl",
        "DeadLetterQueueUrl",
        "ContextTableName",
        "StatusTableName",
        "CoordinationTableName",
        "PayloadBucketName",
        "WorkerFunctionName",
        "ReconcilerFunctionName",
        "ApiFunctionName",
        "AlarmTopicArn",
        "DashboardUrl",
    }
    url = json.dumps(default.raw["Outputs"]["DashboardUrl"]["Value"])
    dashboard = default.logical_id(default.stack.dashboard)
    assert "#dashboards:name=" in url
    assert json.dumps({"Ref": dashboard}) in url


# --------------------------------------------------------------------------------- alarms


def alarms(synth: Synth) -> dict[str, dict[str, Any]]:
    return {
        a["Properties"]["AlarmName"]: a["Properties"]
        for a in synth.resources("AWS::CloudWatch::Alarm").values()
    }


def test_alarms(default: Synth) -> None:
    stack = default.stack
    dlq = default.logical_id(stack.dead_letter_queue)
    queue = default.logical_id(stack.queue)
    api = default.logical_id(stack.api)
    expected = {
        "dlq-not-empty": (
            "ApproximateNumberOfMessagesVisible",
            "AWS/SQS",
            0,
            {"Fn::GetAtt": [dlq, "QueueName"]},
        ),
        "worker-errors": ("Errors", "AWS/Lambda", 0, {"Ref": default.logical_id(stack.worker)}),
        "oldest-job-age": (
            "ApproximateAgeOfOldestMessage",
            "AWS/SQS",
            300,
            {"Fn::GetAtt": [queue, "QueueName"]},
        ),
        "reconciler-errors": (
            "Errors",
            "AWS/Lambda",
            0,
            {"Ref": default.logical_id(stack.reconciler)},
        ),
        "api-5xx": ("5XXError", "AWS/ApiGateway", 0, None),
        "api-latency": ("Latency", "AWS/ApiGateway", 3000, None),
        "worker-near-timeout": (
            "Duration",
            "AWS/Lambda",
            48000,
            {"Ref": default.logical_id(stack.worker)},
        ),
    }
    for role, function in stack.functions.items():
        expected[f"{role}-throttles"] = (
            "Throttles",
            "AWS/Lambda",
            0,
            {"Ref": default.logical_id(function)},
        )
    found = alarms(default)
    assert set(found) == {f"flowcraft-{name}" for name in expected}
    for name, (metric, namespace, threshold, dimension) in expected.items():
        alarm = found[f"flowcraft-{name}"]
        assert (alarm["MetricName"], alarm["Namespace"], alarm["Threshold"]) == (
            metric,
            namespace,
            threshold,
        )
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
        if dimension is not None:
            assert [d["Value"] for d in alarm["Dimensions"]] == [dimension]
        elif namespace == "AWS/ApiGateway":
            assert {"Name": "ApiName", "Value": "flowcraft-api"} in alarm["Dimensions"]
    assert found["flowcraft-api-latency"]["ExtendedStatistic"] == "p90"
    assert found["flowcraft-worker-near-timeout"]["Statistic"] == "Maximum"
    assert api  # the API exists


def test_every_alarm_notifies_the_stack_topic(default: Synth) -> None:
    topic = {"Ref": default.logical_id(default.stack.alarm_topic)}
    default.template.resource_count_is("AWS::SNS::Topic", 1)
    default.template.has_resource_properties("AWS::SNS::Topic", {"TopicName": "flowcraft-alarms"})
    default.template.resource_count_is("AWS::SNS::Subscription", 0)
    for alarm in alarms(default).values():
        assert alarm["AlarmActions"] == [topic]
        assert alarm["OKActions"] == [topic]


def test_given_topic_and_email_subscription(variants: dict[str, Synth]) -> None:
    fifo = variants["fifo"]
    fifo.template.resource_count_is("AWS::SNS::Topic", 0)
    fifo.template.has_resource_properties(
        "AWS::SNS::Subscription",
        {"Protocol": "email", "Endpoint": "ops@example.com", "TopicArn": ALERTS_ARN},
    )
    found = alarms(fifo)
    assert len(found) == 10
    for alarm in found.values():
        assert alarm["AlarmActions"] == [ALERTS_ARN]


# ------------------------------------------------------------------------------ dashboard


def dashboard_body(synth: Synth) -> dict[str, Any]:
    dashboard = next(iter(synth.resources("AWS::CloudWatch::Dashboard").values()))
    parts = dashboard["Properties"]["DashboardBody"]["Fn::Join"][1]
    text = "".join(p if isinstance(p, str) else "TOKEN" for p in parts)
    return dict(json.loads(text))


def test_dashboard_shows_runs_nodes_queues_functions_and_api(
    default: Synth, variants: dict[str, Synth]
) -> None:
    default.template.has_resource_properties(
        "AWS::CloudWatch::Dashboard", {"DashboardName": "flowcraft-dashboard"}
    )
    metrics = [
        metric
        for widget in dashboard_body(default)["widgets"]
        for metric in widget["properties"].get("metrics", [])
    ]
    by_namespace: dict[str, set[str]] = {}
    for metric in metrics:
        by_namespace.setdefault(metric[0], set()).add(metric[1])
    assert by_namespace["Flowcraft"] >= {
        "RunsStarted",
        "RunsCompleted",
        "RunsFailed",
        "NodesExecuted",
        "NodeFailures",
        "NodeDuration",
    }
    assert by_namespace["AWS/SQS"] >= {
        "ApproximateNumberOfMessagesVisible",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateAgeOfOldestMessage",
    }
    assert by_namespace["AWS/Lambda"] >= {"Errors", "Duration", "Throttles"}
    assert by_namespace["AWS/ApiGateway"] >= {"Count", "4XXError", "5XXError", "Latency"}
    # EMF metrics carry Powertools' service dimension.
    emf = [m for m in metrics if m[0] == "Flowcraft" and m[1] == "NodesExecuted"]
    assert emf and emf[0][2:4] == ["service", "flowcraft"]
    variants["fifo"].template.resource_count_is("AWS::CloudWatch::Dashboard", 0)


def test_runs_started_are_counted_from_the_access_log(default: Synth) -> None:
    metric_filter = next(iter(default.resources("AWS::Logs::MetricFilter").values()))["Properties"]
    assert metric_filter["LogGroupName"] == {
        "Ref": next(
            k for k, v in default.resources("AWS::Logs::LogGroup").items() if "ApiAccessLogs" in k
        )
    }
    pattern = metric_filter["FilterPattern"]
    for clause in ('$.httpMethod = "POST"', '$.resourcePath = "/runs"', '$.status = "202"'):
        assert clause in pattern
    assert metric_filter["MetricTransformations"] == [
        {"MetricName": "RunsStarted", "MetricNamespace": "Flowcraft", "MetricValue": "1"}
    ]


# ----------------------------------------------------------------- a second, different copy


def test_second_copy_gets_its_own_names(default: Synth, variants: dict[str, Synth]) -> None:
    variant = variants["api_key"]
    assert variant.stack.stack_name == "flowcraft-staging" != default.stack.stack_name

    def names(synth: Synth, kind: str, key: str) -> set[str]:
        return {r["Properties"][key] for r in synth.resources(kind).values()}

    for kind, key in [
        ("AWS::DynamoDB::Table", "TableName"),
        ("AWS::SQS::Queue", "QueueName"),
        ("AWS::Lambda::Function", "FunctionName"),
        ("AWS::CloudWatch::Alarm", "AlarmName"),
        ("AWS::SNS::Topic", "TopicName"),
        ("AWS::CloudWatch::Dashboard", "DashboardName"),
    ]:
        assert not names(default, kind, key) & names(variant, kind, key), kind
    assert names(variant, "AWS::DynamoDB::Table", "TableName") == {
        spec.name("flowcraft-staging") for spec in TABLES
    }


def test_variant_fifo_queues_and_window(variants: dict[str, Synth]) -> None:
    fifo = variants["fifo"]
    for name in ("flowcraft-fifo-jobs.fifo", "flowcraft-fifo-jobs-dlq.fifo"):
        fifo.template.has_resource_properties(
            "AWS::SQS::Queue",
            {"QueueName": name, "FifoQueue": True, "ContentBasedDeduplication": True},
        )
    mapping = next(iter(fifo.resources("AWS::Lambda::EventSourceMapping").values()))
    assert "MaximumBatchingWindowInSeconds" not in mapping["Properties"]


def test_variant_api_keys_leave_webhooks_open(variants: dict[str, Synth]) -> None:
    synth = variants["api_key"]
    for route, method in routes(synth).items():
        assert method["AuthorizationType"] == "NONE"
        assert method.get("ApiKeyRequired", False) is (route != WEBHOOK), route
    synth.template.resource_count_is("AWS::ApiGateway::UsagePlan", 1)
    synth.template.resource_count_is("AWS::ApiGateway::ApiKey", 1)
    synth.template.all_resources_properties("AWS::Lambda::Function", {"Architectures": ["x86_64"]})


def test_variant_cognito_authorizes_every_route_but_webhooks(variants: dict[str, Synth]) -> None:
    for route, method in routes(variants["cognito"]).items():
        expected = "NONE" if route == WEBHOOK else "COGNITO_USER_POOLS"
        assert method["AuthorizationType"] == expected, route


def test_variant_tracing(variants: dict[str, Synth]) -> None:
    variants["tracing"].template.all_resources_properties(
        "AWS::Lambda::Function", {"TracingConfig": {"Mode": "Active"}}
    )


# ------------------------------------------------------------------------ cdk-nag, cfn-lint


def test_cdk_nag_aws_solutions_clean(every: dict[str, Synth]) -> None:
    """The fixtures' synth already raised on findings; this names any that slip through."""
    for name, synth in every.items():
        report = AwsSolutionsChecks().validate_scope(synth.stack)
        findings = [
            f"{v.rule_name}: {[r.construct_path for r in v.violating_resources]}"
            for v in report.violations
        ]
        assert findings == [], name


@pytest.fixture(scope="module")
def cfn_lint_run(every: dict[str, Synth]) -> Iterator[subprocess.Popen[str]]:
    """cfn-lint over every variant's template in a process of its own, started early (like
    checkov) so that it runs beside the other tests."""
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "cfn-lint"),  # the venv's console script
            *("--format", "parseable", "--regions", "us-east-1", "eu-west-1"),
            # W3005: CDK adds a DependsOn on the role that a GetAtt already implies; harmless.
            *("--ignore-checks", "W3005", "--"),
            *(str(synth.path) for synth in every.values()),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    yield process
    if process.poll() is None:
        process.kill()
        process.communicate()


def test_cfn_lint_clean(cfn_lint_run: subprocess.Popen[str]) -> None:
    stdout, stderr = cfn_lint_run.communicate(timeout=300)
    assert stdout.splitlines() == []
    assert cfn_lint_run.returncode == 0, stderr[-2000:]


#: Where checkov lives: its own venv (it pins a boto3 older than the functions'), which
#: .ci/run creates; ``CHECKOV`` overrides, a ``checkov`` on PATH also does.
CHECKOV_CANDIDATES = (os.environ.get("CHECKOV", ""), str(ROOT / ".build/checkov/bin/checkov"))


def find_checkov() -> str | None:
    import shutil

    for candidate in CHECKOV_CANDIDATES:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("checkov")


def documented_checkov_findings() -> set[str]:
    """The check ids docs/deploy.md lists, with a reason, as accepted."""
    import re

    text = (ROOT / "docs" / "deploy.md").read_text()
    section = text.split("## Checkov findings", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(CKV2?_AWS_\d+)` \|", section, flags=re.MULTILINE))


@pytest.fixture(scope="module")
def checkov_run(
    every: dict[str, Synth], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[subprocess.Popen[str] | None]:
    """checkov over every variant's template, started as soon as the templates exist: it runs
    in its own process while the other tests of this module go on."""
    checkov = find_checkov()
    if checkov is None:
        yield None
        return
    folder = tmp_path_factory.mktemp("checkov")
    for name, synth in every.items():
        (folder / f"{name}.template.json").write_text(synth.path.read_text())
    process = subprocess.Popen(
        [
            checkov,
            *("-d", str(folder), "--framework", "cloudformation", "--output", "json"),
            *("--quiet", "--compact", "--skip-download"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    yield process
    if process.poll() is None:
        process.kill()
        process.communicate()


def test_checkov_findings_are_all_documented(checkov_run: subprocess.Popen[str] | None) -> None:
    """Each check checkov fails on any variant must be listed and explained in
    docs/deploy.md, and the list must not keep checks that no longer fail."""
    if checkov_run is None:
        pytest.skip("checkov is not installed (.ci/run installs it into .build/checkov)")
    stdout, stderr = checkov_run.communicate(timeout=300)
    assert checkov_run.returncode in (0, 1), stderr[-2000:]
    reports = json.loads(stdout)
    failed: dict[str, set[str]] = {}
    for report in reports if isinstance(reports, list) else [reports]:
        for check in report["results"]["failed_checks"]:
            failed.setdefault(check["check_id"], set()).add(check["resource"])
    documented = documented_checkov_findings()
    undocumented = {k: sorted(v) for k, v in failed.items() if k not in documented}
    assert undocumented == {}, "explain these in docs/deploy.md, or fix them"
    assert documented - set(failed) == set(), "no longer found: remove from docs/deploy.md"


# -------------------------------------------------------------------------- make sam-env
def test_env_json_from_deployed_outputs(default: Synth) -> None:
    outputs = {
        "QueueUrl": "https://sqs.eu-west-1.amazonaws.com/123456789012/flowcraft-jobs",
        "PayloadBucketName": "flowcraft-payloadbucket-abc123",
        "ContextTableName": "flowcraft-contexts",
        "StatusTableName": "flowcraft-statuses",
        "CoordinationTableName": "flowcraft-coordination",
        "ApiUrl": "https://abc123.execute-api.eu-west-1.amazonaws.com/prod/",
    }
    document, missing = sam_env.env_json(default.raw, outputs)
    assert missing == []
    shared = document["Parameters"]
    assert shared["FLOWCRAFT_QUEUE_URL"] == outputs["QueueUrl"]
    assert shared["FLOWCRAFT_PAYLOAD_BUCKET"] == outputs["PayloadBucketName"]
    assert shared["FLOWCRAFT_STATUS_TABLE"] == "flowcraft-statuses"
    assert shared["FLOWCRAFT_RETENTION_DAYS"] == "30"
    assert shared["FLOWCRAFT_WEBHOOK_BASE_URL"] == outputs["ApiUrl"]
    assert all(isinstance(value, str) for value in shared.values())
    functions = {default.logical_id(f) for f in default.stack.functions.values()}
    assert set(document) == {"Parameters"} | functions


def test_env_json_without_a_deployed_stack(default: Synth, tmp_path: Path) -> None:
    document, missing = sam_env.env_json(default.raw, region="eu-west-1", account="123456789012")
    shared = document["Parameters"]
    assert shared["FLOWCRAFT_CONTEXT_TABLE"] == "flowcraft-contexts"  # fixed in the template
    assert shared["FLOWCRAFT_QUEUE_URL"] == (
        "https://sqs.eu-west-1.amazonaws.com/123456789012/flowcraft-jobs"
    )
    # CloudFormation names the bucket and the API's host.
    assert missing == ["FLOWCRAFT_PAYLOAD_BUCKET", "FLOWCRAFT_WEBHOOK_BASE_URL"]
    assert "PayloadBucketName" in shared["FLOWCRAFT_PAYLOAD_BUCKET"]

    template = tmp_path / "flowcraft.template.json"
    template.write_text(json.dumps(default.raw))
    out = tmp_path / "env.json"
    assert sam_env.main(["--template", str(template), "--output", str(out), "--no-aws"]) == 0
    assert set(json.loads(out.read_text())["Parameters"]) == set(shared)


def test_construct_ids_from_cli_metadata() -> None:
    resource: dict[str, Any] = {"Metadata": {"aws:cdk:path": "flowcraft/WorkerFunction/Resource"}}
    assert sam_env._construct_id(resource) == "WorkerFunction"
    assert sam_env._construct_id({}) is None


# ------------------------------------------------------------------------------- settings


def test_settings_parse_command_line_strings() -> None:
    settings = Settings.from_context(
        {
            "flowcraft:workerTimeoutSeconds": "90",
            "flowcraft:dashboard": "true",
            "flowcraft:apiAuth": "api-key",
            "flowcraft:fifo": "1",
            "flowcraft:stalledSeconds": 600,
        }
    )
    assert settings.worker_timeout_seconds == 90
    assert settings.dashboard is True
    assert settings.api_auth == "api_key"
    assert settings.max_batching_window_seconds == 0  # FIFO has no batching window
    assert settings.resolved_stack_name == "flowcraft"
    assert settings.resolved_worker_reserved_concurrency == settings.worker_max_concurrency
    principals = Settings.from_context(
        {"flowcraft:apiAllowedPrincipals": f" 123456789012, {OPS_ROLE} "}
    ).api_allowed_principals
    assert principals == ("123456789012", OPS_ROLE)
    assert Settings.from_context(context()).bundle_dependencies is False


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"flowcraft:workerTimeout": 30}, "unknown context key"),
        ({"flowcraft:prefix": "Flow_Craft"}, "flowcraft:prefix must be"),
        ({"flowcraft:batchSize": "ten"}, "must be an integer"),
        ({"flowcraft:workerMaxConcurrency": 1}, "between 2 and 1000"),
        ({"flowcraft:logRetentionDays": 10}, "must be one of"),
        ({"flowcraft:architecture": "arm"}, "arm64, x86_64"),
        ({"flowcraft:dashboard": "maybe"}, "true or false"),
        ({"flowcraft:fifo": True, "flowcraft:maxBatchingWindowSeconds": 1}, "must be 0"),
        ({"flowcraft:stalledSeconds": 60}, "must exceed"),
        ({"flowcraft:apiAuth": "cognito"}, "cognitoUserPoolArn"),
        ({"flowcraft:workerReservedConcurrency": 10}, "must be at least"),
        ({"flowcraft:alarmEmail": "ops"}, "an e-mail address"),
        ({"flowcraft:apiSourceVpce": "vpc-123"}, "VPC endpoint id"),
        ({"flowcraft:apiAllowedPrincipals": "bob"}, "account ids or IAM"),
        (
            {"flowcraft:apiAllowedPrincipals": ["123456789012"], "flowcraft:apiAuth": "api_key"},
            "needs flowcraft:apiAuth=iam",
        ),
        ({"flowcraft:retentionDays": 0}, "between 1 and 3650"),
        ({"flowcraft:deletionProtection": "off"}, "true or false"),
        ({"flowcraft:removalPolicy": "destroy"}, "needs flowcraft:deletionProtection=false"),
    ],
)
def test_settings_reject_bad_values(values: dict[str, Any], message: str) -> None:
    with pytest.raises(StackSettingsError, match=message):
        Settings.from_context(values)


def test_cdk_json_context_defaults_match_settings() -> None:
    """cdk.json documents the defaults; they must be the defaults the code uses."""
    from_json = Settings.from_context(CDK_JSON["context"])
    assert from_json == Settings()
    assert CDK_JSON["app"] == ".venv/bin/python app.py"


# ------------------------------------------------------------------------------- bundling


def make_project(root: Path) -> Path:
    for package in bundling.PACKAGES:
        (root / package / "sub").mkdir(parents=True)
        (root / package / "__init__.py").write_text("")
        (root / package / "sub" / "module.py").write_text("X = 1\n")
        for junk in ("tests", "__pycache__", ".mypy_cache"):
            (root / package / junk).mkdir()
            (root / package / junk / "junk.py").write_text("")
        (root / package / "sub" / "test_module.py").write_text("")
        (root / package / "conftest.py").write_text("")
        (root / package / "stale.pyc").write_bytes(b"")
        (root / package / ".env").write_text("SECRET=1")
    (root / "requirements.txt").write_text("pydantic==2.14.4\n")
    (root / bundling.LOCK_FILE).write_text("pydantic==2.14.4 \\\n    --hash=sha256:00\n")
    return root


def test_pip_command_targets_the_lambda_platform(tmp_path: Path) -> None:
    command = bundling.pip_install_command(
        tmp_path / "requirements.lock", tmp_path / "out", platform="manylinux2014_aarch64"
    )
    assert command == [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--requirement",
        str(tmp_path / "requirements.lock"),
        "--require-hashes",
        "--target",
        str(tmp_path / "out"),
        "--platform",
        "manylinux2014_aarch64",
        "--python-version",
        "3.13",
        "--implementation",
        "cp",
        "--only-binary=:all:",
        "--no-compile",
        "--quiet",
        "--disable-pip-version-check",
    ]
    assert Settings(architecture="x86_64").pip_platform == "manylinux2014_x86_64"
    assert bundling.compile_command("python3.13", tmp_path)[1:] == [
        "-m",
        "compileall",
        "-q",
        "--invalidation-mode",
        "unchecked-hash",
        str(tmp_path),
    ]


def test_source_only_bundle_excludes_tests_caches_and_dot_files(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project")
    spec = bundling.BundleSpec(project, "manylinux2014_aarch64", bundle_dependencies=False)
    out = tmp_path / "asset"
    out.mkdir()
    assert bundling.LocalBundler(spec).try_bundle(str(out), image=None) is True  # type: ignore[arg-type]
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == sorted(
        f"{package}/{name}"
        for package in bundling.PACKAGES
        for name in ("__init__.py", "sub/module.py")
    )


def test_asset_hash_follows_sources_not_junk(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    spec = bundling.BundleSpec(project, "manylinux2014_aarch64", bundle_dependencies=True)
    first = spec.asset_hash()
    (project / "handlers" / "tests" / "junk.py").write_text("changed")
    (project / "handlers" / "__pycache__" / "junk.py").write_text("changed")
    assert spec.asset_hash() == first
    (project / "handlers" / "sub" / "module.py").write_text("X = 2\n")
    assert spec.asset_hash() != first
    other = bundling.BundleSpec(project, "manylinux2014_x86_64", bundle_dependencies=True)
    assert other.asset_hash() != spec.asset_hash()
    assert other.dependency_key("python3.13") != spec.dependency_key("python3.13")


def test_asset_hash_and_cache_key_follow_the_resolved_set(tmp_path: Path) -> None:
    """A transitive dependency moving to another version (or another file) is a new asset and
    a new cache, even when requirements.txt does not change."""
    project = make_project(tmp_path)
    spec = bundling.BundleSpec(project, "manylinux2014_aarch64", bundle_dependencies=True)
    assert spec.requirements == project / "requirements.lock"
    asset, key = spec.asset_hash(), spec.dependency_key("python3.13")
    with (project / "requirements.lock").open("a") as lock:
        lock.write("typing-extensions==4.16.0 \\\n    --hash=sha256:01\n")
    assert spec.asset_hash() != asset
    assert spec.dependency_key("python3.13") != key


@pytest.fixture
def cached_dependencies() -> Iterator[bundling.BundleSpec]:
    """The real project, when a deploy-mode synth already filled the pip cache (else skip)."""
    spec = bundling.BundleSpec(ROOT, "manylinux2014_aarch64", bundle_dependencies=True)
    compiler = bundling.find_runtime_python()
    if not spec.cache_dir(compiler).is_dir():
        pytest.skip("no cached dependency bundle; `npx aws-cdk@2 synth` builds it once")
    if any(not (ROOT / p).is_dir() for p in bundling.PACKAGES):
        pytest.skip("application packages not all present yet")
    yield spec


def test_full_bundle_from_cache_targets_aarch64(
    cached_dependencies: bundling.BundleSpec, tmp_path: Path
) -> None:
    bundling.build_bundle(cached_dependencies, tmp_path)
    assert all((tmp_path / package).is_dir() for package in bundling.PACKAGES)
    assert list(
        (tmp_path / "pydantic_core").glob("_pydantic_core.cpython-313-aarch64-linux-gnu.so")
    )
    assert not list(tmp_path.glob("*/tests"))
    if bundling.find_runtime_python():
        sources = [p for p in tmp_path.rglob("*.py") if p.parent.name != "__pycache__"]
        missing = [
            str(p.relative_to(tmp_path))
            for p in sources
            if not (p.parent / "__pycache__" / f"{p.stem}.cpython-313.pyc").is_file()
        ]
        assert missing == []
