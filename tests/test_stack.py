"""The CDK stack: resources and settings, least-privilege IAM, cdk-nag, cfn-lint, bundling.

Synthesis costs seconds (jsii starts a Node process), so each configuration is synthesized once
per module and every test reads the same template. The apps come from ``app.build_app`` with
the context of ``cdk.json``, exactly as the CLI builds them, AwsSolutions checks included: an
unacknowledged cdk-nag finding makes the fixture itself fail. Dependency bundling (pip) is off
here; the bundler is tested on its own below, without the network.
"""

from __future__ import annotations

import os

# jsii's Node child reads these when aws_cdk is first imported: silence the Node 20 banner.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

import json
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
    ACTIVE_SHARD_ATTRIBUTE,
    ACTIVE_SINCE_ATTRIBUTE,
    JOB_QUEUE,
    STATUS_ACTIVE_INDEX,
    TABLES,
    TTL_ATTRIBUTE,
)
from stacks import FlowcraftStack, bundling
from stacks.flowcraft_stack import CONTEXT_ACTIONS, GRANTS
from stacks.settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parents[1]
CDK_JSON = json.loads((ROOT / "cdk.json").read_text())

ENV_VARS = {
    "FLOWCRAFT_QUEUE_URL",
    "FLOWCRAFT_CONTEXT_TABLE",
    "FLOWCRAFT_STATUS_TABLE",
    "FLOWCRAFT_COORDINATION_TABLE",
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
ROUTES = {
    ("POST", "/runs"),
    ("GET", "/runs/{runId}"),
    ("POST", "/runs/{runId}/resume"),
    ("POST", "/runs/{runId}/cancel"),
    ("GET", "/openapi.json"),
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
def variant(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """A second copy with every non-default option turned on."""
    return synthesize(
        tmp_path_factory.mktemp("cdk-variant"),
        prefix="flowcraft-staging",
        fifo="true",  # strings, as `cdk deploy -c key=value` passes them
        apiAuth="api_key",
        dashboard="true",
        tracing="true",
        architecture="x86_64",
        alarmTopicArn="arn:aws:sns:eu-west-1:123456789012:alerts",
    )


# --------------------------------------------------------------------------------- queues


def test_job_queue_redrives_to_its_dlq(default: Synth) -> None:
    stack = default.stack
    default.template.has_resource_properties(
        "AWS::SQS::Queue",
        {
            "QueueName": JOB_QUEUE.name("flowcraft"),
            "RedrivePolicy": {
                "deadLetterTargetArn": {
                    "Fn::GetAtt": [default.logical_id(stack.dead_letter_queue), "Arn"]
                },
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
    default.template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "TableName": spec.name("flowcraft"),
            "KeySchema": [{"AttributeName": spec.partition_key.name, "KeyType": "HASH"}],
            "BillingMode": "PAY_PER_REQUEST",
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "TimeToLiveSpecification": {"AttributeName": TTL_ATTRIBUTE, "Enabled": True},
        },
    )


def test_status_table_has_the_active_runs_index(default: Synth) -> None:
    default.template.resource_count_is("AWS::DynamoDB::Table", 3)
    default.template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "TableName": "flowcraft-statuses",
            "AttributeDefinitions": Match.array_with(
                [{"AttributeName": ACTIVE_SINCE_ATTRIBUTE, "AttributeType": "N"}]
            ),
            "GlobalSecondaryIndexes": [
                {
                    "IndexName": STATUS_ACTIVE_INDEX,
                    "KeySchema": [
                        {"AttributeName": ACTIVE_SHARD_ATTRIBUTE, "KeyType": "HASH"},
                        {"AttributeName": ACTIVE_SINCE_ATTRIBUTE, "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                }
            ],
        },
    )


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
        for role in ("context", "status", "coordination"):
            assert variables[f"FLOWCRAFT_{role.upper()}_TABLE"] == {
                "Ref": default.logical_id(stack.tables[role])
            }


def test_log_groups_are_explicit_with_retention(default: Synth) -> None:
    default.template.resource_count_is("AWS::Logs::LogGroup", 4)  # 3 functions + API access
    default.template.all_resources_properties("AWS::Logs::LogGroup", {"RetentionInDays": 30})


def test_worker_consumes_the_queue_with_partial_batch_failures(default: Synth) -> None:
    default.template.resource_count_is("AWS::Lambda::EventSourceMapping", 1)
    default.template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "EventSourceArn": {"Fn::GetAtt": [default.logical_id(default.stack.queue), "Arn"]},
            "FunctionName": {"Ref": default.logical_id(default.stack.worker)},
            "BatchSize": 10,
            "MaximumBatchingWindowInSeconds": 1,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "ScalingConfig": {"MaximumConcurrency": 20},
        },
    )


def test_reconciler_runs_on_a_schedule(default: Synth) -> None:
    default.template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "ScheduleExpression": "rate(1 minute)",
            "State": "ENABLED",
            "Targets": [
                Match.object_like(
                    {"Arn": {"Fn::GetAtt": [default.logical_id(default.stack.reconciler), "Arn"]}}
                )
            ],
        },
    )
    default.template.has_resource_properties(
        "AWS::Lambda::Permission",
        {"Principal": "events.amazonaws.com", "Action": "lambda:InvokeFunction"},
    )


# ------------------------------------------------------------------------------------ IAM


def policy_actions(synth: Synth, role: str) -> dict[str, list[Any]]:
    """Action -> resources of the one policy attached to a function's role."""
    role_id = synth.logical_id(getattr(synth.stack, role).role)
    policies = [
        p
        for p in synth.resources("AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
    ]
    assert len(policies) == 1
    actions: dict[str, list[Any]] = {}
    for statement in policies[0]["Properties"]["PolicyDocument"]["Statement"]:
        assert statement["Effect"] == "Allow"
        names = statement["Action"]
        resources = statement["Resource"]
        for name in [names] if isinstance(names, str) else names:
            actions.setdefault(name, []).extend(
                resources if isinstance(resources, list) else [resources]
            )
    return actions


def test_no_wildcard_actions_anywhere(default: Synth, variant: Synth) -> None:
    for synth in (default, variant):
        for policy in synth.resources("AWS::IAM::Policy").values():
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                names = statement["Action"]
                for name in [names] if isinstance(names, str) else names:
                    assert "*" not in name, name
        for role in synth.resources("AWS::IAM::Role").values():
            assert "Policies" not in role["Properties"]


def test_worker_permissions_are_exact(default: Synth) -> None:
    actions = policy_actions(default, "worker")
    assert set(actions) == set(TABLE_ACTIONS) | {"sqs:SendMessage"} | EVENT_SOURCE_ACTIONS | (
        LOG_ACTIONS
    )
    tables = [{"Fn::GetAtt": [default.logical_id(t), "Arn"]} for t in default.stack.tables.values()]
    for action in TABLE_ACTIONS:
        assert sorted(map(json.dumps, actions[action])) == sorted(map(json.dumps, tables))
    queue = {"Fn::GetAtt": [default.logical_id(default.stack.queue), "Arn"]}
    assert actions["sqs:SendMessage"] == [queue]


def test_reconciler_queries_only_the_status_table_and_its_index(default: Synth) -> None:
    actions = policy_actions(default, "reconciler")
    assert set(actions) == set(TABLE_ACTIONS) | {"dynamodb:Query", "sqs:SendMessage"} | LOG_ACTIONS
    status = {"Fn::GetAtt": [default.logical_id(default.stack.tables["status"]), "Arn"]}
    index = {"Fn::Join": ["", [status, f"/index/{STATUS_ACTIVE_INDEX}"]]}
    assert actions["dynamodb:Query"] == [status, index]


def test_api_function_cannot_query_or_consume(default: Synth) -> None:
    actions = policy_actions(default, "api_function")
    assert set(actions) == set(TABLE_ACTIONS) | {"sqs:SendMessage"} | LOG_ACTIONS
    assert "dynamodb:Query" not in actions


def test_functions_do_not_use_managed_policies(default: Synth) -> None:
    lambda_roles = [
        role
        for role in default.resources("AWS::IAM::Role").values()
        if "lambda.amazonaws.com" in json.dumps(role["Properties"]["AssumeRolePolicyDocument"])
    ]
    assert len(lambda_roles) == 3
    assert all("ManagedPolicyArns" not in role["Properties"] for role in lambda_roles)


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
    function_arn = {"Fn::GetAtt": [default.logical_id(default.stack.api_function), "Arn"]}
    for method in methods.values():
        assert method["AuthorizationType"] == "AWS_IAM"
        assert method["Integration"]["Type"] == "AWS_PROXY"
        assert function_arn in method["Integration"]["Uri"]["Fn::Join"][1]
        assert "RequestValidatorId" in method


def test_bodies_and_path_parameters_are_validated(default: Synth) -> None:
    default.template.has_resource_properties(
        "AWS::ApiGateway::RequestValidator",
        {"ValidateRequestBody": True, "ValidateRequestParameters": True},
    )
    methods = routes(default)
    assert "application/json" in methods[("POST", "/runs")]["RequestModels"]
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


def test_outputs(default: Synth) -> None:
    assert set(default.raw["Outputs"]) == {
        "ApiUrl",
        "QueueUrl",
        "DeadLetterQueueUrl",
        "ContextTableName",
        "StatusTableName",
        "CoordinationTableName",
        "WorkerFunctionName",
        "ReconcilerFunctionName",
        "ApiFunctionName",
    }


# --------------------------------------------------------------------------------- alarms


def test_alarms(default: Synth) -> None:
    stack = default.stack
    dlq = default.logical_id(stack.dead_letter_queue)
    queue = default.logical_id(stack.queue)
    worker = default.logical_id(stack.worker)
    expected = [
        ("ApproximateNumberOfMessagesVisible", "AWS/SQS", 0, {"Fn::GetAtt": [dlq, "QueueName"]}),
        ("Errors", "AWS/Lambda", 0, {"Ref": worker}),
        ("ApproximateAgeOfOldestMessage", "AWS/SQS", 300, {"Fn::GetAtt": [queue, "QueueName"]}),
    ]
    for metric, namespace, threshold, dimension in expected:
        default.template.has_resource_properties(
            "AWS::CloudWatch::Alarm",
            {
                "MetricName": metric,
                "Namespace": namespace,
                "Threshold": threshold,
                "ComparisonOperator": "GreaterThanThreshold",
                "Dimensions": [Match.object_like({"Value": dimension})],
            },
        )
    default.template.resource_count_is("AWS::CloudWatch::Dashboard", 0)


# ----------------------------------------------------------------- a second, different copy


def test_second_copy_gets_its_own_names(default: Synth, variant: Synth) -> None:
    assert variant.stack.stack_name == "flowcraft-staging" != default.stack.stack_name

    def names(synth: Synth, kind: str, key: str) -> set[str]:
        return {r["Properties"][key] for r in synth.resources(kind).values()}

    for kind, key in [
        ("AWS::DynamoDB::Table", "TableName"),
        ("AWS::SQS::Queue", "QueueName"),
        ("AWS::Lambda::Function", "FunctionName"),
        ("AWS::CloudWatch::Alarm", "AlarmName"),
    ]:
        assert not names(default, kind, key) & names(variant, kind, key), kind
    assert names(variant, "AWS::DynamoDB::Table", "TableName") == {
        spec.name("flowcraft-staging") for spec in TABLES
    }


def test_variant_fifo_queues_and_window(variant: Synth) -> None:
    for name in ("flowcraft-staging-jobs.fifo", "flowcraft-staging-jobs-dlq.fifo"):
        variant.template.has_resource_properties(
            "AWS::SQS::Queue",
            {"QueueName": name, "FifoQueue": True, "ContentBasedDeduplication": True},
        )
    mapping = next(iter(variant.resources("AWS::Lambda::EventSourceMapping").values()))
    assert "MaximumBatchingWindowInSeconds" not in mapping["Properties"]


def test_variant_api_keys_tracing_dashboard(variant: Synth) -> None:
    for method in routes(variant).values():
        assert method["AuthorizationType"] == "NONE"
        assert method["ApiKeyRequired"] is True
    variant.template.resource_count_is("AWS::ApiGateway::UsagePlan", 1)
    variant.template.resource_count_is("AWS::ApiGateway::ApiKey", 1)
    variant.template.resource_count_is("AWS::CloudWatch::Dashboard", 1)
    variant.template.all_resources_properties(
        "AWS::Lambda::Function",
        {"TracingConfig": {"Mode": "Active"}, "Architectures": ["x86_64"]},
    )
    variant.template.all_resources_properties(
        "AWS::CloudWatch::Alarm",
        {"AlarmActions": ["arn:aws:sns:eu-west-1:123456789012:alerts"]},
    )


# ------------------------------------------------------------------------ cdk-nag, cfn-lint


def test_cdk_nag_aws_solutions_clean(default: Synth, variant: Synth) -> None:
    """The fixtures' synth already raised on findings; this names any that slip through."""
    for synth in (default, variant):
        report = AwsSolutionsChecks().validate_scope(synth.stack)
        findings = [
            f"{v.rule_name}: {[r.construct_path for r in v.violating_resources]}"
            for v in report.violations
        ]
        assert findings == []


def test_cfn_lint_clean(default: Synth, variant: Synth) -> None:
    from cfnlint.api import ManualArgs, lint

    # W3005: CDK adds a DependsOn on the role that a GetAtt already implies; harmless.
    config = ManualArgs(regions=["us-east-1", "eu-west-1"], ignore_checks=["W3005"])
    for synth in (default, variant):
        matches = lint(synth.path.read_text(), config=config)
        assert [f"{m.rule.id} {m.message} (line {m.linenumber})" for m in matches] == []


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
    ],
)
def test_settings_reject_bad_values(values: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
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
