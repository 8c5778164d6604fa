"""boto3 implementations of the distributed protocol (SQS + DynamoDB)."""

from .adapter import SqsAdapter, create_sqs_reconciler, start_workflow
from .context import DynamoDbContext
from .coordination import DynamoDbCoordinationStore
from .job_queue import SqsJobQueue
from .run_store import DynamoDbRunStore
from .settings import AwsSettings, SettingsError
from .status_store import DynamoDbStatusStore

__all__ = [
    "AwsSettings",
    "DynamoDbContext",
    "DynamoDbCoordinationStore",
    "DynamoDbRunStore",
    "DynamoDbStatusStore",
    "SettingsError",
    "SqsAdapter",
    "SqsJobQueue",
    "create_sqs_reconciler",
    "start_workflow",
]
