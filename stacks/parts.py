"""The base every part of the Flowcraft stack builds on: shared attributes and helpers."""

from __future__ import annotations

from aws_cdk import Acknowledgment, CfnElement, RemovalPolicy, Stack, Validations
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_wafv2 as wafv2
from constructs import IConstruct

from flowcraft_core.aws.schema import DEFAULT_PREFIX

from .settings import Settings

RETENTION: dict[int, logs.RetentionDays] = {
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


def acknowledge(scope: IConstruct, rule_id: str, reason: str) -> None:
    """Record why a cdk-nag finding does not apply here (an unacknowledged one stops the synth)."""
    Validations.of(scope).acknowledge(Acknowledgment(id=rule_id, reason=reason))


def logical_id(stack: Stack, construct: IConstruct) -> str:
    """The CloudFormation logical id of a construct's resource, as cdk-nag names it."""
    child = construct.node.default_child
    assert isinstance(child, CfnElement)
    return str(stack.resolve(stack.get_logical_id(child)))


class StackParts(Stack):
    """What every part of the stack reads: the settings and the resources built before it.

    Each part (storage, functions, REST API, monitoring) is a mixin of ``FlowcraftStack`` that
    builds its resources in the stack's own scope, so a logical id does not depend on which
    module builds the resource.
    """

    settings: Settings
    removal_policy: RemovalPolicy
    log_retention: logs.RetentionDays
    tables: dict[str, dynamodb.Table]
    payload_bucket: s3.Bucket
    dead_letter_queue: sqs.Queue
    queue: sqs.Queue
    worker: lambda_.Function
    reconciler: lambda_.Function
    api_function: lambda_.Function
    functions: dict[str, lambda_.Function]
    api: apigw.RestApi
    runs_started: cloudwatch.Metric
    web_acl: wafv2.CfnWebACL | None
    alarm_topic: sns.ITopic
    alarms: list[cloudwatch.Alarm]
    dashboard: cloudwatch.Dashboard | None

    @property
    def metrics_namespace(self) -> str:
        """The EMF namespace of the functions' own metrics: ``Flowcraft`` for the default
        prefix, ``Flowcraft/<prefix>`` for any other copy, so two copies' figures never mix
        (the handlers' ``service`` dimension is the same in every copy)."""
        prefix = self.settings.prefix
        return "Flowcraft" if prefix == DEFAULT_PREFIX else f"Flowcraft/{prefix}"
