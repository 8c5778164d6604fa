"""The HTTP API's request and answer models (pydantic, camelCase on the wire) and limits.

The OpenAPI document is generated from these models, so it cannot drift from what the routes
accept and answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse


#: Largest request body accepted (bytes, after base64 decoding). Jobs and run records live in
#: SQS (256 KiB) and DynamoDB (400 KB) items, so a bigger starting context could never run.
MAX_BODY_BYTES = 256 * 1024
#: Run ids chosen by clients: safe in URLs, log lines and DynamoDB keys.
#: Run ids a client may choose ("." and ".." would not survive URL normalisation).
RUN_ID_PATTERN = r"^[A-Za-z0-9._:-]+$"
#: Longest run id in a path: a child run's id is its parent's, the node key and a separator.
MAX_RUN_PATH_LENGTH = 1000
MAX_ID_LENGTH = 200
API_VERSION = "1.0.0"
JSON = "application/json"


class _Request(BaseModel):
    """camelCase on the wire; an unknown field is an error (a typo must not lose data)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class _Reply(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class StartRunRequest(_Request):
    blueprint_id: str = Field(
        min_length=1, max_length=MAX_ID_LENGTH, description="Id of a blueprint of the app."
    )
    context: dict[str, Any] = Field(
        default_factory=dict, description="The run's initial context (a JSON object)."
    )

    @field_validator("run_id")
    @classmethod
    def _addressable_run_id(cls, value: str | None) -> str | None:
        if value in (".", ".."):
            raise ValueError("runId cannot be '.' or '..' (URLs would not reach it)")
        return value

    @field_validator("context")
    @classmethod
    def _storable_context(cls, value: dict[str, Any]) -> dict[str, Any]:
        from flowcraft_core.distributed.storable import check_storable

        check_storable(value, "context")
        return value

    run_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_ID_LENGTH,
        pattern=RUN_ID_PATTERN,
        description="Idempotency key: starting the same runId again returns the same run.",
    )


class ResumeRunRequest(_Request):
    node_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_ID_LENGTH,
        description="The waiting node; optional when exactly one node waits.",
    )
    action: str | None = Field(
        default=None, min_length=1, max_length=MAX_ID_LENGTH, description="Routes the edges."
    )
    output: Any = Field(default=None, description="The waiting node's output.")

    @field_validator("output")
    @classmethod
    def _storable_output(cls, value: Any) -> Any:
        from flowcraft_core.distributed.storable import check_storable

        check_storable(value, "output")
        return value


class RunAccepted(_Reply):
    run_id: str
    status: str


class ResumeAccepted(RunAccepted):
    node_id: str


class RunView(_Reply):
    """``GET /runs/{runId}``; fields the engine adds later pass through."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    run_id: str
    blueprint_id: str
    status: str = Field(description="running, awaiting, completed, failed or cancelled")
    context: dict[str, Any]
    error: str | None = None
    created_at: str = Field(description="ISO 8601, UTC.")
    updated_at: str = Field(description="ISO 8601, UTC.")
    nodes: dict[str, Any] | None = Field(
        default=None, description="Node id -> status (runs of up to 200 nodes)."
    )
    outputs: dict[str, Any] | None = Field(
        default=None,
        description="Node id -> output (runs of up to 200 nodes; values too large for the "
        "answer read as {'$omitted': ..., 'storedBytes': n}).",
    )
    summary: dict[str, Any] | None = Field(
        default=None, description="How many nodes the run has and where to page through them."
    )


class NodeResultView(_Reply):
    """One node instance of a run (a loop member has one per pass: ``id#2``)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    node_id: str
    instance: str
    status: str = Field(
        description="completed, skipped, failed, awaiting, waiting, retrying or sleeping"
    )
    attempts: int
    output: Any = None
    action: str | None = None
    error: str | None = None
    finished_at: str | None = Field(default=None, description="ISO 8601, UTC.")
    next_attempt_at: str | None = Field(default=None, description="When a retry is due.")
    wake_at: str | None = Field(default=None, description="When a sleep ends.")


class NodePage(_Reply):
    run_id: str
    items: list[NodeResultView]
    next_token: str | None = Field(
        default=None, description="Pass as nextToken to read the next page; absent at the end."
    )


class RunSummaryView(_Reply):
    """One row of ``GET /runs``: what the status table holds about a run."""

    run_id: str
    blueprint_id: str
    status: str
    created_at: str = Field(description="ISO 8601, UTC.")
    updated_at: str = Field(description="ISO 8601, UTC.")
    error: str | None = None


class RunList(_Reply):
    items: list[RunSummaryView]
    next_token: str | None = Field(
        default=None, description="Pass it back as nextToken for the next page; absent at the end."
    )


class FieldProblem(BaseModel):
    field: str
    message: str
    type: str


class ErrorBody(BaseModel):
    message: str
    errors: list[FieldProblem] | None = None


def documented(description: str, model: type[BaseModel] = ErrorBody) -> OpenAPIResponse:
    return {"description": description, "content": {JSON: {"model": model}}}


BAD_REQUEST = documented("Invalid JSON, a body that breaks the schema, or an unknown blueprint")
NOT_FOUND = documented("No run with this id")
CONFLICT = documented("The run's status does not allow this")
TOO_LARGE = documented(f"Body over {MAX_BODY_BYTES} bytes")


def reply(status: int, model: BaseModel) -> Response[dict[str, Any]]:
    """Serialize a reply model ourselves (camelCase, absent fields omitted).

    Routes are annotated ``Response[dict]`` so Powertools does not re-validate replies: a reply
    that failed its validation would be reported as the *client's* 422. The reply models still
    document the answers (``responses=`` below) and are built here, so a wrong reply fails
    loudly (500) instead of silently.
    """
    return Response(status, JSON, model.model_dump(by_alias=True, exclude_none=True))


RunIdPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_RUN_PATH_LENGTH,
        title="runId",
        description="Run id (child runs of subflows extend their parent's id)",
    ),
]
