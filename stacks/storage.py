"""Storage: the three tables, the payload bucket, the job queue and its DLQ.

Table and queue shapes come from ``flowcraft_core.aws.schema`` (the module local provisioning
uses too), so what deploys and what runs on a laptop cannot drift.
"""

from __future__ import annotations

import dataclasses

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs

from flowcraft_core.aws.schema import (
    DEFAULT_RUN_HORIZON_DAYS,
    JOB_QUEUE,
    PAYLOAD_BUCKET,
    IndexSpec,
    KeySpec,
    TableSpec,
)

from .parts import StackParts, acknowledge


def _attribute(key: KeySpec) -> dynamodb.Attribute:
    kind = dynamodb.AttributeType.NUMBER if key.type == "N" else dynamodb.AttributeType.STRING
    return dynamodb.Attribute(name=key.name, type=kind)


class Storage(StackParts):
    """Tables, the payload bucket, the job queue and its dead-letter queue."""

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
        acknowledge(
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
        acknowledge(
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
