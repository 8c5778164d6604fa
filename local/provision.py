"""Create Flowcraft's queue, dead-letter queue and tables on whatever ``AWS_ENDPOINT_URL`` names.

Built from :mod:`flowcraft_core.aws.schema`, the specs the CDK stack deploys; idempotent, and
cheap in requests because it runs before every local session and in tests.
Why it is shaped this way: docs/local.md, 'Provisioning'.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError

from flowcraft_core.aws.schema import (
    DEFAULT_PREFIX,
    JOB_QUEUE,
    PAYLOAD_BUCKET,
    TABLES,
    BucketSpec,
    QueueSpec,
    TableSpec,
)
from flowcraft_core.aws.schema import create_table_request as _create_table_request
from flowcraft_core.environment import (
    FLOWCRAFT_CONTEXT_TABLE,
    FLOWCRAFT_COORDINATION_TABLE,
    FLOWCRAFT_DLQ_URL,
    FLOWCRAFT_PAYLOAD_BUCKET,
    FLOWCRAFT_QUEUE_URL,
    FLOWCRAFT_STATUS_TABLE,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

logger = logging.getLogger("flowcraft.local")

#: Settings keys, in the order they are printed, per table role.
TABLE_SETTINGS = {
    "context": FLOWCRAFT_CONTEXT_TABLE,
    "status": FLOWCRAFT_STATUS_TABLE,
    "coordination": FLOWCRAFT_COORDINATION_TABLE,
}
_QUEUE_EXISTS_CODES = {
    "QueueAlreadyExists",
    "QueueNameExists",
    "AWS.SimpleQueueService.QueueNameExists",
}
#: Attributes SQS only accepts at creation time.
_IMMUTABLE_QUEUE_ATTRIBUTES = {"FifoQueue"}


def provision(
    prefix: str = DEFAULT_PREFIX,
    *,
    session: boto3.Session | None = None,
    queue: QueueSpec = JOB_QUEUE,
    tables: tuple[TableSpec, ...] = TABLES,
    bucket: BucketSpec = PAYLOAD_BUCKET,
) -> dict[str, str]:
    """Create (or reuse) the job queue, its DLQ and the tables; return the ``FLOWCRAFT_*`` settings.

    ``queue`` and ``tables`` default to the schema's specs; tests pass a variant (for example a
    one-second visibility timeout and a small ``max_receive_count``) to watch redelivery and
    dead-lettering without waiting minutes. Without ``session`` the clients come from boto3's
    default session, so request counters installed there (``local.aws_calls``) see these calls.
    """
    sqs: SQSClient = session.client("sqs") if session else boto3.client("sqs")
    dynamodb: DynamoDBClient = session.client("dynamodb") if session else boto3.client("dynamodb")

    dlq_url = _ensure_queue(sqs, queue.dlq_name(prefix), _dlq_attributes(queue))
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue_url = _ensure_queue(sqs, queue.name(prefix), _queue_attributes(queue, dlq_arn))

    settings = {FLOWCRAFT_QUEUE_URL: queue_url, FLOWCRAFT_DLQ_URL: dlq_url}
    for spec in tables:
        table_name = spec.name(prefix)
        _ensure_table(dynamodb, spec, table_name)
        settings[TABLE_SETTINGS[spec.role]] = table_name
    s3 = session.client("s3") if session else boto3.client("s3")
    settings[FLOWCRAFT_PAYLOAD_BUCKET] = _ensure_bucket(s3, bucket, bucket.name(prefix))
    logger.info("provisioned %s", ", ".join(f"{k}={v}" for k, v in settings.items()))
    return settings


def _ensure_bucket(s3: Any, spec: BucketSpec, name: str) -> str:
    """Create the payload bucket (or reuse it) with the schema's expiry rule."""
    region = s3.meta.region_name
    kwargs: dict[str, Any] = {"Bucket": name}
    if region and region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(**kwargs)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in (
            "BucketAlreadyOwnedByYou",
            "BucketAlreadyExists",
        ):
            raise
        return name
    s3.put_bucket_lifecycle_configuration(
        Bucket=name,
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": "expire-run-payloads",
                    "Status": "Enabled",
                    "Filter": {"Prefix": spec.key_prefix},
                    "Expiration": {"Days": spec.expiry_days},
                }
            ]
        },
    )
    return name


def _fifo_attributes(spec: QueueSpec) -> dict[str, str]:
    return {"FifoQueue": "true", "ContentBasedDeduplication": "true"} if spec.fifo else {}


def _dlq_attributes(spec: QueueSpec) -> dict[str, str]:
    return {"MessageRetentionPeriod": str(spec.dlq_retention_seconds), **_fifo_attributes(spec)}


def _queue_attributes(spec: QueueSpec, dlq_arn: str) -> dict[str, str]:
    attributes = {
        "VisibilityTimeout": str(spec.visibility_timeout_seconds),
        "MessageRetentionPeriod": str(spec.retention_seconds),
        "ReceiveMessageWaitTimeSeconds": str(spec.receive_wait_seconds),
        "RedrivePolicy": json.dumps(
            {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": spec.max_receive_count}
        ),
        **_fifo_attributes(spec),
    }
    attributes.update({key: _attribute_value(value) for key, value in spec.extra.items()})
    return attributes


def _attribute_value(value: Any) -> str:
    """SQS attributes are strings on the wire: ``True`` -> ``"true"``, dicts -> JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _ensure_queue(sqs: SQSClient, name: str, attributes: dict[str, str]) -> str:
    """Create the queue; if one with other attributes exists, bring it to the spec."""
    try:
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]  # type: ignore[arg-type]
        logger.debug("queue %s ready", name)
        return url
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in _QUEUE_EXISTS_CODES:
            raise
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    mutable = {k: v for k, v in attributes.items() if k not in _IMMUTABLE_QUEUE_ATTRIBUTES}
    sqs.set_queue_attributes(QueueUrl=url, Attributes=mutable)  # type: ignore[arg-type]
    logger.info("queue %s existed with other attributes; updated it to the spec", name)
    return url


def _ensure_table(dynamodb: DynamoDBClient, spec: TableSpec, table_name: str) -> None:
    """Create the table with TTL on, or reuse an existing one and make sure its TTL is on."""
    try:
        description = dynamodb.create_table(**_create_table_request(spec, table_name))
        if description["TableDescription"].get("TableStatus") != "ACTIVE":
            dynamodb.get_waiter("table_exists").wait(
                TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
            )
        created = True
    except dynamodb.exceptions.ResourceInUseException:
        created = False

    if not created:
        ttl = dynamodb.describe_time_to_live(TableName=table_name)["TimeToLiveDescription"]
        status = ttl.get("TimeToLiveStatus")
        if status in ("ENABLED", "ENABLING"):
            if ttl.get("AttributeName") != spec.ttl_attribute:
                logger.warning(
                    "table %s has TTL on %r, the schema says %r; left as it is",
                    table_name,
                    ttl.get("AttributeName"),
                    spec.ttl_attribute,
                )
            logger.debug("table %s reused", table_name)
            return
    dynamodb.update_time_to_live(
        TableName=table_name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute},
    )
    logger.debug("table %s ready (TTL on %r)", table_name, spec.ttl_attribute)
