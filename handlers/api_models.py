"""The HTTP API's request and answer models (pydantic, camelCase on the wire) and limits.

The OpenAPI document is generated from these models, so it cannot drift from what the routes
accept and answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from flowcraft_core.api_requests import (
    MAX_BODY_BYTES,
)

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse


#: Longest run id in a path: a child run's id is its parent's, the node key and a separator.
MAX_RUN_PATH_LENGTH = 1000
API_VERSION = "1.0.0"
JSON = "application/json"


class _Reply(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


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
