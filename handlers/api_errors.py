"""The API's error answers: every refusal is a 4xx JSON body whose message names what is wrong.

Request validation answers 400, not Powertools' 422 (docs/design.md, section 6).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from handlers import config
from handlers.api_models import JSON
from handlers.config import logger


def refuse(code: int, message: str, **extra: Any) -> Response[dict[str, Any]]:
    logger.info("request refused", extra={"status_code": code, "reason": message})
    return Response(code, JSON, {"message": message, **extra})


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if len(parts) > 1 and parts[0] in {"body", "path", "query", "header"}:
        parts = parts[1:]
    return ".".join(parts) or "body"


def _invalid_request(exc: RequestValidationError) -> Response[dict[str, Any]]:
    errors = list(exc.errors())
    for error in errors:
        if error.get("type") == "json_invalid":
            detail = (error.get("ctx") or {}).get("error", "malformed")
            position = error.get("loc", ("body", 0))[-1]
            return refuse(
                400, f"request body is not valid JSON: {detail} (at character {position})"
            )
    problems: list[dict[str, str]] = []
    for error in errors:
        loc = tuple(error.get("loc") or ("body",))
        kind = str(error.get("type", "invalid"))
        if loc == ("body",) and kind == "missing":
            message = "a JSON object is required"
        elif loc == ("body",) and kind in {"model_attributes_type", "dict_type", "model_type"}:
            message = "must be a JSON object"
        elif kind == "extra_forbidden":
            message = "unknown field"
        else:
            message = str(error.get("msg", "invalid"))
        problems.append({"field": _field_name(loc), "message": message, "type": kind})
    summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
    return refuse(400, f"invalid request: {summary}", errors=problems)


def register(app: APIGatewayRestResolver, routes: tuple[str, ...]) -> None:
    """The answers that need no engine import: invalid requests, unknown routes, crashes."""
    app.exception_handler(RequestValidationError)(_invalid_request)

    @app.not_found
    def _no_route(exc: NotFoundError) -> Response[dict[str, Any]]:
        event = app.current_event
        return refuse(
            404,
            f"no route for {event.http_method} {event.path}; routes: {', '.join(routes)}",
        )

    @app.exception_handler(Exception)
    def _internal_error(exc: Exception) -> Response[dict[str, Any]]:
        request_id = app.current_event.request_context.request_id
        logger.exception("request failed", exc_info=exc)
        return Response(
            500, JSON, {"message": f"internal error; see the logs for request {request_id}"}
        )


def register_client_errors(app: APIGatewayRestResolver) -> None:
    """Map the client's errors to answers (imported lazily: flowcraft_core pulls in boto3).

    Called on the first request; registering handlers is idempotent.
    """
    from flowcraft_core.aws.run_listing import InvalidPageToken
    from flowcraft_core.distributed.errors import (
        InvalidBlueprint,
        InvalidResume,
        RunConflict,
        RunNotFound,
        UnknownBlueprint,
        UnknownWebhook,
        WebhookRefused,
    )

    answers: dict[type[Exception], Callable[[Any], Response[dict[str, Any]]]] = {
        WebhookRefused: lambda exc: refuse(403, str(exc)),
        UnknownWebhook: lambda exc: refuse(404, str(exc)),
        InvalidBlueprint: lambda exc: refuse(400, str(exc), issues=exc.issues),
        InvalidResume: lambda exc: refuse(400, f"invalid request: {exc}", validActions=exc.valid),
        InvalidPageToken: lambda exc: refuse(400, f"invalid request: {exc}"),
        UnknownBlueprint: lambda exc: refuse(
            400, str(exc), knownBlueprints=config.container().blueprint_ids
        ),
        RunNotFound: lambda exc: refuse(404, str(exc)),
        RunConflict: lambda exc: refuse(409, str(exc), status=exc.status),
    }
    for error, answer in answers.items():
        app.exception_handler(error)(answer)
