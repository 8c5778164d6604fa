"""Every environment variable Flowcraft reads, listed once (no imports: the Lambda handlers read
this table at cold start)."""

from __future__ import annotations

#: ``FLOWCRAFT_*`` variable -> what it holds (the README's "Settings" section says the same).
FLOWCRAFT_VARIABLES: dict[str, str] = {
    "FLOWCRAFT_QUEUE_URL": "the job queue",
    "FLOWCRAFT_CONTEXT_TABLE": "the table of runs' items",
    "FLOWCRAFT_STATUS_TABLE": "the table of run statuses",
    "FLOWCRAFT_COORDINATION_TABLE": "the table of locks",
    "FLOWCRAFT_PAYLOAD_BUCKET": "the S3 bucket for large values",
    "FLOWCRAFT_APP": "the app module exposing blueprints and registry",
    "FLOWCRAFT_STALLED_SECONDS": "how long a run may show no sign of life",
    "FLOWCRAFT_RETENTION_DAYS": "how long a finished run stays readable",
    "FLOWCRAFT_MAX_VALUE_MB": "the largest value a run stores",
    "FLOWCRAFT_WEBHOOK_BASE_URL": "what webhook nodes' URLs start with",
}
#: The variables without which the functions cannot serve.
REQUIRED: tuple[str, ...] = (
    "FLOWCRAFT_QUEUE_URL",
    "FLOWCRAFT_CONTEXT_TABLE",
    "FLOWCRAFT_STATUS_TABLE",
    "FLOWCRAFT_COORDINATION_TABLE",
)
#: boto3's own endpoint variables (the local emulator sets them).
AWS_ENDPOINTS: tuple[str, ...] = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_SQS",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL_S3",
)
