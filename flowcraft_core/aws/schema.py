"""The one definition of Flowcraft's tables and queues.

The CDK stack (``stacks/``) and the local provisioning (``local/``) both build their resources
from these specs, so names, keys, indexes, TTL attributes and redrive settings cannot drift
between what deploys and what runs on a laptop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

AttributeType = Literal["S", "N"]

#: Attribute DynamoDB's TTL reads on every table (epoch seconds).
TTL_ATTRIBUTE = "ttl"
#: Sparse index on the status table: only runs that are still active carry ``activeShard``,
#: so the reconciler queries active runs by staleness without scanning the table.
STATUS_ACTIVE_INDEX = "activeRuns"
ACTIVE_SHARD_ATTRIBUTE = "activeShard"
ACTIVE_SINCE_ATTRIBUTE = "heartbeatAt"
#: Number of partitions the active-run index is spread over (avoids one hot key).
ACTIVE_SHARDS = 4
#: Indexes behind ``GET /runs``: every status item carries ``status``, ``blueprintId`` and
#: ``createdAt``, so listing runs by status or by blueprint, newest first, is one Query
#: (``ScanIndexForward=False``) on the matching index, never a scan. Both project every
#: attribute: a status item is small, and a page then needs no read per run.
#: (CloudFormation adds one index per table update: an existing stack takes them in two deploys.)
STATUS_BY_STATUS_INDEX = "runsByStatus"
STATUS_BY_BLUEPRINT_INDEX = "runsByBlueprint"
CREATED_AT_ATTRIBUTE = "createdAt"


@dataclass(frozen=True)
class KeySpec:
    name: str
    type: AttributeType = "S"


@dataclass(frozen=True)
class IndexSpec:
    name: str
    partition_key: KeySpec
    sort_key: KeySpec | None = None
    projection: Literal["ALL", "KEYS_ONLY"] = "KEYS_ONLY"


@dataclass(frozen=True)
class TableSpec:
    """A DynamoDB table: ``role`` is how code refers to it, ``suffix`` names it."""

    role: Literal["context", "status", "coordination"]
    suffix: str
    partition_key: KeySpec
    ttl_attribute: str = TTL_ATTRIBUTE
    indexes: tuple[IndexSpec, ...] = ()

    def name(self, prefix: str) -> str:
        return f"{prefix}-{self.suffix}"


@dataclass(frozen=True)
class QueueSpec:
    """The job queue and its dead-letter queue."""

    suffix: str = "jobs"
    dlq_suffix: str = "jobs-dlq"
    visibility_timeout_seconds: int = 180
    max_receive_count: int = 5
    retention_seconds: int = 4 * 24 * 3600
    dlq_retention_seconds: int = 14 * 24 * 3600
    receive_wait_seconds: int = 20
    fifo: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def name(self, prefix: str) -> str:
        return f"{prefix}-{self.suffix}" + (".fifo" if self.fifo else "")

    def dlq_name(self, prefix: str) -> str:
        return f"{prefix}-{self.dlq_suffix}" + (".fifo" if self.fifo else "")


CONTEXT_TABLE = TableSpec(role="context", suffix="contexts", partition_key=KeySpec("runId"))
STATUS_TABLE = TableSpec(
    role="status",
    suffix="statuses",
    partition_key=KeySpec("runId"),
    indexes=(
        IndexSpec(
            name=STATUS_ACTIVE_INDEX,
            partition_key=KeySpec(ACTIVE_SHARD_ATTRIBUTE),
            sort_key=KeySpec(ACTIVE_SINCE_ATTRIBUTE, "N"),
        ),
        IndexSpec(
            name=STATUS_BY_STATUS_INDEX,
            partition_key=KeySpec("status"),
            sort_key=KeySpec(CREATED_AT_ATTRIBUTE, "N"),
            projection="ALL",
        ),
        IndexSpec(
            name=STATUS_BY_BLUEPRINT_INDEX,
            partition_key=KeySpec("blueprintId"),
            sort_key=KeySpec(CREATED_AT_ATTRIBUTE, "N"),
            projection="ALL",
        ),
    ),
)
COORDINATION_TABLE = TableSpec(
    role="coordination", suffix="coordination", partition_key=KeySpec("key")
)

TABLES: tuple[TableSpec, ...] = (CONTEXT_TABLE, STATUS_TABLE, COORDINATION_TABLE)
JOB_QUEUE = QueueSpec()

DEFAULT_PREFIX = "flowcraft"

#: How long a finished run stays readable: its items and payloads expire this long after it ends.
DEFAULT_RETENTION_DAYS = 30
#: The longest a run is expected to stay active. Items written while a run is under way expire
#: ``retention + horizon`` days after they were written, so they outlive any run shorter than
#: the horizon by at least the retention (DynamoDB TTL and S3 lifecycle both count from a fixed
#: time, not from the run's end).
DEFAULT_RUN_HORIZON_DAYS = 30


@dataclass(frozen=True)
class BucketSpec:
    """The S3 bucket that holds values too large for a DynamoDB item (outputs, context values,
    map items and results, resume outputs), referenced from the items by key."""

    role: Literal["payload"] = "payload"
    suffix: str = "payloads"
    #: Every object lives under this prefix, then ``<runId>/...``.
    key_prefix: str = "runs/"
    #: Objects expire this many days after they were written (lifecycle rule).
    expiry_days: int = DEFAULT_RETENTION_DAYS + DEFAULT_RUN_HORIZON_DAYS

    def name(self, prefix: str) -> str:
        """The local bucket name (a deployed stack lets CloudFormation name it uniquely)."""
        return f"{prefix}-{self.suffix}"


PAYLOAD_BUCKET = BucketSpec()


def create_table_request(spec: TableSpec, table_name: str) -> dict[str, Any]:
    """The boto3 ``create_table`` arguments for a spec (PAY_PER_REQUEST)."""
    attributes: dict[str, AttributeType] = {spec.partition_key.name: spec.partition_key.type}
    indexes: list[dict[str, Any]] = []
    for index in spec.indexes:
        attributes[index.partition_key.name] = index.partition_key.type
        key_schema = [{"AttributeName": index.partition_key.name, "KeyType": "HASH"}]
        if index.sort_key is not None:
            attributes[index.sort_key.name] = index.sort_key.type
            key_schema.append({"AttributeName": index.sort_key.name, "KeyType": "RANGE"})
        indexes.append(
            {
                "IndexName": index.name,
                "KeySchema": key_schema,
                "Projection": {"ProjectionType": index.projection},
            }
        )
    request: dict[str, Any] = {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": name, "AttributeType": kind} for name, kind in attributes.items()
        ],
        "KeySchema": [{"AttributeName": spec.partition_key.name, "KeyType": "HASH"}],
    }
    if indexes:
        request["GlobalSecondaryIndexes"] = indexes
    return request
