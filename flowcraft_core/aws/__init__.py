"""boto3 implementations of the distributed protocol (SQS + DynamoDB)."""

from .adapter import SqsAdapter, create_sqs_reconciler, run_items, start_workflow
from .context import DynamoDbContext
from .coordination import DynamoDbCoordinationStore
from .item_store import DynamoDbItemStore
from .job_queue import SqsJobQueue
from .payload_store import S3PayloadStore
from .settings import AwsSettings, SettingsError
from .status_store import DynamoDbStatusStore

__all__ = [
    "AwsSettings",
    "DynamoDbContext",
    "DynamoDbCoordinationStore",
    "DynamoDbItemStore",
    "DynamoDbStatusStore",
    "S3PayloadStore",
    "SettingsError",
    "SqsAdapter",
    "SqsJobQueue",
    "create_sqs_reconciler",
    "run_items",
    "start_workflow",
]
