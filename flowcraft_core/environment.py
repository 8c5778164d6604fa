"""Every environment variable Flowcraft reads, listed once (no imports: the Lambda handlers read
this table at cold start)."""

from __future__ import annotations

#: The functions' settings (what ``local provision`` prints and the stack sets).
FLOWCRAFT_QUEUE_URL = "FLOWCRAFT_QUEUE_URL"
FLOWCRAFT_CONTEXT_TABLE = "FLOWCRAFT_CONTEXT_TABLE"
FLOWCRAFT_STATUS_TABLE = "FLOWCRAFT_STATUS_TABLE"
FLOWCRAFT_COORDINATION_TABLE = "FLOWCRAFT_COORDINATION_TABLE"
FLOWCRAFT_PAYLOAD_BUCKET = "FLOWCRAFT_PAYLOAD_BUCKET"
FLOWCRAFT_APP = "FLOWCRAFT_APP"
FLOWCRAFT_STALLED_SECONDS = "FLOWCRAFT_STALLED_SECONDS"
FLOWCRAFT_RETENTION_DAYS = "FLOWCRAFT_RETENTION_DAYS"
FLOWCRAFT_MAX_VALUE_MB = "FLOWCRAFT_MAX_VALUE_MB"
FLOWCRAFT_WEBHOOK_BASE_URL = "FLOWCRAFT_WEBHOOK_BASE_URL"
#: Written by ``local provision`` for tools that inspect the dead-letter queue (no function
#: reads it).
FLOWCRAFT_DLQ_URL = "FLOWCRAFT_DLQ_URL"
#: The command line's and ``FlowcraftClient``'s: where the API is and how to call it.
FLOWCRAFT_API_URL = "FLOWCRAFT_API_URL"
FLOWCRAFT_STACK = "FLOWCRAFT_STACK"
FLOWCRAFT_API_KEY = "FLOWCRAFT_API_KEY"
FLOWCRAFT_AUTH = "FLOWCRAFT_AUTH"

#: The functions' variables -> what each holds (the README's "Settings" section says the same).
FLOWCRAFT_VARIABLES: dict[str, str] = {
    FLOWCRAFT_QUEUE_URL: "the job queue",
    FLOWCRAFT_CONTEXT_TABLE: "the table of runs' items",
    FLOWCRAFT_STATUS_TABLE: "the table of run statuses",
    FLOWCRAFT_COORDINATION_TABLE: "the table of locks",
    FLOWCRAFT_PAYLOAD_BUCKET: "the S3 bucket for large values",
    FLOWCRAFT_APP: "the app module exposing blueprints and registry",
    FLOWCRAFT_STALLED_SECONDS: "how long a run may show no sign of life",
    FLOWCRAFT_RETENTION_DAYS: "how long a finished run stays readable",
    FLOWCRAFT_MAX_VALUE_MB: "the largest value a run stores",
    FLOWCRAFT_WEBHOOK_BASE_URL: "what webhook nodes' URLs start with",
}
#: The variables without which the functions cannot serve.
REQUIRED: tuple[str, ...] = (
    FLOWCRAFT_QUEUE_URL,
    FLOWCRAFT_CONTEXT_TABLE,
    FLOWCRAFT_STATUS_TABLE,
    FLOWCRAFT_COORDINATION_TABLE,
)
#: The command line's variables -> what each holds (the README's command line section).
CLIENT_VARIABLES: dict[str, str] = {
    FLOWCRAFT_API_URL: "the API's base URL",
    FLOWCRAFT_STACK: "the deployed stack whose API to call",
    FLOWCRAFT_API_KEY: "the API key of an api_key stack",
    FLOWCRAFT_AUTH: "how requests are signed",
}
#: boto3's own endpoint variables (the local emulator sets them).
AWS_ENDPOINTS: tuple[str, ...] = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_SQS",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL_S3",
)
