"""HTTP API (API Gateway REST, proxy integration): the routes of ``flowcraft_core.routes``.

Bodies are pydantic models (``api_models``) validated by Powertools; the OpenAPI document is
generated from them. Every client mistake answers 4xx with a JSON message naming what is wrong,
and bad input never reaches a queue or a table: docs/design.md, section 6, says why 400 and not
422, and why bodies are JSON whatever their ``Content-Type``.
"""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.logging import correlation_paths

from flowcraft_core.api_requests import MAX_ID_LENGTH, ResumeRunRequest, StartRunRequest
from flowcraft_core.routes import ROUTES as API_ROUTES
from flowcraft_core.status import CANCELLED, RUNNING, RunStatus
from handlers import api_errors, config
from handlers.api_models import (
    API_VERSION,
    BAD_REQUEST,
    CONFLICT,
    JSON,
    MAX_BODY_BYTES,
    MAX_RUN_PATH_LENGTH,
    NOT_FOUND,
    TOO_LARGE,
    ErrorBody,
    NodePage,
    ResumeAccepted,
    RunAccepted,
    RunIdPath,
    RunList,
    RunSummaryView,
    RunView,
    documented,
    reply,
)
from handlers.config import logger

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext


ROUTES = tuple(str(route) for route in API_ROUTES)

app = APIGatewayRestResolver(enable_validation=True)
api_errors.register(app, ROUTES)


# ------------------------------------------------------------------------------- routes


@app.post(
    "/runs",
    summary="Start a run",
    responses={
        202: documented("Started (or already started with this runId)", RunAccepted),
        400: BAD_REQUEST,
        409: documented("This runId belongs to a run of another blueprint"),
        413: TOO_LARGE,
    },
    tags=["runs"],
)
def start_run(body: Annotated[StartRunRequest, Body()]) -> Response[dict[str, Any]]:
    client = config.adapter().client
    run_id, status = client.start(body.blueprint_id, body.context, run_id=body.run_id)
    logger.info("run started", extra={"run_id": run_id, "blueprint_id": body.blueprint_id})
    return reply(202, RunAccepted(run_id=run_id, status=status))


@app.get(
    "/runs",
    summary="List runs, newest first",
    responses={200: documented("A page of runs", RunList), 400: BAD_REQUEST},
    tags=["runs"],
)
def list_runs(
    status: Annotated[RunStatus | None, Query(description="Only runs with this status")] = None,
    blueprintId: Annotated[
        str | None,
        Query(min_length=1, max_length=MAX_ID_LENGTH, description="Only runs of this blueprint"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size (1-100)")] = 20,
    nextToken: Annotated[
        str | None,
        Query(min_length=1, max_length=4096, description="From the previous page"),
    ] = None,
) -> Response[dict[str, Any]]:
    """Newest first through the status table's indexes (never a scan)."""
    page = config.adapter().statuses.list_runs(
        status=status, blueprint_id=blueprintId, limit=limit, next_token=nextToken
    )
    runs = RunList(
        items=[RunSummaryView.model_validate(run.to_api()) for run in page.items],
        next_token=page.next_token,
    )
    return reply(200, runs)


@app.get(
    "/runs/<runId>",
    summary="Get a run",
    responses={
        200: documented("The run", RunView),
        400: BAD_REQUEST,
        404: NOT_FOUND,
    },
    tags=["runs"],
)
def get_run(runId: RunIdPath) -> Response[dict[str, Any]]:
    runId = _decoded(runId)
    return reply(200, RunView.model_validate(config.adapter().client.view(runId)))


@app.get(
    "/runs/<runId>/nodes",
    summary="Page through a run's node results",
    responses={
        200: documented("A page of node results, in blueprint order", NodePage),
        400: BAD_REQUEST,
        404: NOT_FOUND,
    },
    tags=["runs"],
)
def list_nodes(
    runId: RunIdPath,
    limit: Annotated[int, Query(ge=1, le=500, description="Node results per page")] = 50,
    nextToken: Annotated[
        str | None, Query(max_length=500, description="From the previous page")
    ] = None,
) -> Response[dict[str, Any]]:
    runId = _decoded(runId)
    try:
        page = config.adapter().client.nodes(runId, limit=limit, next_token=nextToken)
    except ValueError as exc:
        return reply(400, ErrorBody(message=str(exc)))
    return reply(200, NodePage.model_validate(page))


@app.post(
    "/runs/<runId>/resume",
    summary="Resume an awaiting run",
    responses={
        202: documented("Resumed", ResumeAccepted),
        400: BAD_REQUEST,
        404: NOT_FOUND,
        409: CONFLICT,
        413: TOO_LARGE,
    },
    tags=["runs"],
)
def resume_run(
    runId: RunIdPath,
    body: Annotated[ResumeRunRequest | None, Body()] = None,
) -> Response[dict[str, Any]]:
    from flowcraft_core.scheduler import split_key

    runId = _decoded(runId)
    request = body or ResumeRunRequest()
    key = config.adapter().client.resume(
        runId, node_id=request.node_id, action=request.action, output=request.output
    )
    node_id = split_key(key)[0]
    logger.info("run resumed", extra={"run_id": runId, "node_id": node_id})
    return reply(202, ResumeAccepted(run_id=runId, status=RUNNING, node_id=node_id))


@app.post(
    "/runs/<runId>/cancel",
    summary="Cancel a run",
    responses={
        202: documented("Cancelled: no node of the run starts from now on", RunAccepted),
        400: BAD_REQUEST,
        404: NOT_FOUND,
        409: CONFLICT,
        413: TOO_LARGE,
    },
    tags=["runs"],
)
def cancel_run(runId: RunIdPath) -> Response[dict[str, Any]]:
    runId = _decoded(runId)
    config.adapter().client.cancel(runId)
    logger.info("run cancelled", extra={"run_id": runId})
    return reply(202, RunAccepted(run_id=runId, status=CANCELLED))


@app.post(
    "/runs/<runId>/redrive",
    summary="Redrive a failed run",
    responses={
        202: documented("The failed nodes run again; committed results are kept", RunAccepted),
        400: BAD_REQUEST,
        404: NOT_FOUND,
        409: documented("The run has not failed"),
        413: TOO_LARGE,
    },
    tags=["runs"],
)
def redrive_run(runId: RunIdPath) -> Response[dict[str, Any]]:
    runId = _decoded(runId)
    again = config.adapter().client.redrive(runId)
    logger.info("run redriven", extra={"run_id": runId, "nodes": again})
    return reply(202, RunAccepted(run_id=runId, status=RUNNING))


@app.post(
    "/runs/<runId>/webhooks/<nodeId>",
    summary="Call a webhook node",
    description=(
        "No AWS signature: the node's token (its output's `token`, in the "
        "`X-Flowcraft-Token` header or the `token` query parameter) is the credential. "
        "The JSON body becomes the node's output; `action` (query) routes its edges."
    ),
    responses={
        202: documented("The node goes on with the body as its output", ResumeAccepted),
        400: BAD_REQUEST,
        403: documented("Wrong or missing token; nothing was written"),
        404: documented("No webhook of that node waits in that run"),
        413: TOO_LARGE,
    },
    tags=["webhooks"],
)
def call_webhook(
    runId: RunIdPath,
    nodeId: Annotated[str, Path(min_length=1, max_length=MAX_RUN_PATH_LENGTH)],
    body: Annotated[Any, Body()] = None,
    token: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[str | None, Query(min_length=1, max_length=MAX_ID_LENGTH)] = None,
) -> Response[dict[str, Any]]:
    from flowcraft_core.scheduler import split_key

    runId = _decoded(runId)
    nodeId = _decoded(nodeId)
    header = app.current_event.headers.get("x-flowcraft-token")
    key = config.adapter().client.webhook(runId, nodeId, header or token, body, action)
    logger.info("webhook called", extra={"run_id": runId, "node_id": nodeId})
    return reply(202, ResumeAccepted(run_id=runId, status=RUNNING, node_id=split_key(key)[0]))


def _decoded(run_id: str) -> str:
    """API Gateway (REST) routes on the raw, percent-encoded path: decode the run id."""
    return unquote(run_id)


@app.get("/openapi.json", include_in_schema=False)
def openapi_document() -> Response[str]:
    return Response(200, JSON, openapi_json(_stage_prefix()))


def _stage_prefix() -> str:
    """``/prod`` behind API Gateway (its request path carries the stage), empty locally."""
    event = app.current_event
    full = str((event.raw_event.get("requestContext") or {}).get("path") or "")
    path = event.path
    return full[: -len(path)] if path and full.endswith(path) and full != path else ""


@functools.cache
def openapi_json(stage_prefix: str = "") -> str:
    """The OpenAPI document, generated once per container (and stage) from the route models.

    Its server URL carries the stage, so clients generated from it call ``/prod/runs``.
    """
    document: dict[str, Any] = json.loads(
        app.get_openapi_json_schema(
            title="Flowcraft API",
            version=API_VERSION,
            description="Start, list, inspect, resume and cancel Flowcraft workflow runs.",
        )
    )
    document["servers"] = [{"url": stage_prefix or "/"}]
    # Request validation answers 400 here (docs/design.md, section 6), not Powertools' 422.
    for path in document.get("paths", {}).values():
        for operation in path.values():
            if isinstance(operation, dict):
                operation.get("responses", {}).pop("422", None)
    # Drop Powertools' error schemas nothing refers to any more (they refer to each other).
    schemas = document.get("components", {}).get("schemas", {})
    removed = True
    while removed:
        removed = False
        text = json.dumps(document)
        for name in ("HTTPValidationError", "ResponseValidationError", "ValidationError"):
            if name in schemas and f"#/components/schemas/{name}" not in text:
                del schemas[name]
                removed = True
    return json.dumps(document, indent=2)


# ------------------------------------------------------------------------------- entry


def _body_bytes(event: dict[str, Any]) -> int:
    body = event.get("body")
    if not body:
        return 0
    if event.get("isBase64Encoded"):
        return len(body) * 3 // 4
    if len(body) > MAX_BODY_BYTES:
        return len(body)  # at least that many bytes; no need to encode it
    return len(str(body).encode("utf-8"))


def _as_json(event: dict[str, Any]) -> dict[str, Any]:
    """The event with ``Content-Type: application/json`` (docs/design.md, section 6)."""
    if not event.get("body"):
        return event
    headers = {k: v for k, v in (event.get("headers") or {}).items() if k.lower() != "content-type"}
    headers["Content-Type"] = JSON
    multi = {
        k: v
        for k, v in (event.get("multiValueHeaders") or {}).items()
        if k.lower() != "content-type"
    }
    multi["Content-Type"] = [JSON]
    return {**event, "headers": headers, "multiValueHeaders": multi}


def _proxy_response(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": JSON},
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }


_registered = False


@config.traced
@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True
)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """API Gateway REST proxy event -> proxy response."""
    global _registered
    size = _body_bytes(event)
    if size > MAX_BODY_BYTES:
        message = f"request body is {size} bytes; at most {MAX_BODY_BYTES} (256 KiB) allowed"
        logger.info("request refused", extra={"status_code": 413, "reason": message})
        return _proxy_response(413, {"message": message})
    if not _registered:
        api_errors.register_client_errors(app)
        _registered = True
    return app.resolve(_as_json(event), context)
