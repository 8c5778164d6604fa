"""``local.api_server`` speaks API Gateway's REST proxy format to an injected handler."""

from __future__ import annotations

import base64
import http.client
import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from aws_lambda_powertools.utilities.parser.models import APIGatewayProxyEventModel

from local.api_server import match_resource, serve_api, shutdown_api

Responder = Callable[[dict[str, Any], Any], Any]


class Stub:
    """Records events and answers with whatever ``respond`` returns."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.contexts: list[Any] = []
        self.respond: Responder = lambda event, context: {"statusCode": 200, "body": "{}"}

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.events.append(event)
        self.contexts.append(context)
        return self.respond(event, context)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[Stub, str]]:
    stub = Stub()
    httpd, thread, url = serve_api(stub, port=0)
    yield stub, url
    shutdown_api(httpd, thread)


@pytest.fixture(autouse=True)
def _default_response(server: tuple[Stub, str]) -> None:
    server[0].respond = lambda event, context: {"statusCode": 200, "body": "{}"}


def call(
    url: str,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: list[tuple[str, str]] | None = None,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=5)
    try:
        connection.putrequest(method, path)
        for name, value in headers or []:
            connection.putheader(name, value)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def test_request_becomes_a_rest_proxy_event(server: tuple[Stub, str]) -> None:
    stub, url = server
    body = json.dumps({"nodeId": "approve", "action": "yes"}).encode()
    status, _, _ = call(
        url,
        "POST",
        "/runs/run%2D42/resume?x=1&x=2&empty=",
        body,
        [("Content-Type", "application/json"), ("X-Tag", "a"), ("X-Tag", "b")],
    )

    assert status == 200
    event = stub.events[-1]
    APIGatewayProxyEventModel.model_validate(event)  # Powertools' model of the real event
    assert event["resource"] == "/runs/{runId}/resume"
    assert event["path"] == "/runs/run%2D42/resume"  # as sent, like API Gateway
    assert event["pathParameters"] == {"runId": "run-42"}
    assert event["httpMethod"] == "POST"
    assert json.loads(event["body"]) == {"nodeId": "approve", "action": "yes"}
    assert event["isBase64Encoded"] is False
    assert event["headers"]["Content-Type"] == "application/json"
    assert event["headers"]["X-Tag"] == "b"
    assert event["multiValueHeaders"]["X-Tag"] == ["a", "b"]
    assert event["headers"]["X-Forwarded-Proto"] == "http"
    assert event["queryStringParameters"] == {"x": "2", "empty": ""}
    assert event["multiValueQueryStringParameters"] == {"x": ["1", "2"], "empty": [""]}
    assert event["stageVariables"] is None
    context = event["requestContext"]
    assert context["resourcePath"] == "/runs/{runId}/resume"
    assert context["httpMethod"] == "POST"
    assert context["path"] == "/local/runs/run%2D42/resume"
    assert context["stage"] == "local"
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert context["requestId"] and context["apiId"] and context["accountId"]
    assert isinstance(context["requestTimeEpoch"], int)
    assert stub.contexts[-1].get_remaining_time_in_millis() > 0


@pytest.mark.parametrize(
    ("path", "resource", "params"),
    [
        ("/runs", "/runs", None),
        ("/runs/abc", "/runs/{runId}", {"runId": "abc"}),
        ("/runs/abc/cancel", "/runs/{runId}/cancel", {"runId": "abc"}),
        ("/openapi.json", "/openapi.json", None),
        ("/runs/abc/unknown", "/{proxy+}", {"proxy": "runs/abc/unknown"}),
        ("/elsewhere", "/{proxy+}", {"proxy": "elsewhere"}),
        ("/", "/", None),
    ],
)
def test_resource_matching(path: str, resource: str, params: dict[str, str] | None) -> None:
    assert match_resource(path) == (resource, params)


def test_get_without_body_or_query(server: tuple[Stub, str]) -> None:
    stub, url = server
    call(url, "GET", "/runs/r1")
    event = stub.events[-1]
    assert event["body"] is None
    assert event["queryStringParameters"] is None
    assert event["multiValueQueryStringParameters"] is None
    assert event["resource"] == "/runs/{runId}"


def test_binary_request_body_is_base64(server: tuple[Stub, str]) -> None:
    stub, url = server
    call(url, "PUT", "/upload", b"\xff\xfe\x00")
    event = stub.events[-1]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\xff\xfe\x00"


def test_response_mapping(server: tuple[Stub, str]) -> None:
    stub, url = server
    stub.respond = lambda event, context: {
        "statusCode": 201,
        "headers": {"Content-Type": "application/json", "X-One": "1", "X-Both": "single"},
        "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"], "X-Both": ["multi"]},
        "body": '{"runId": "r1"}',
        "isBase64Encoded": False,
    }
    status, headers, body = call(url, "POST", "/runs", b"{}")
    assert status == 201
    assert json.loads(body) == {"runId": "r1"}
    assert headers["X-One"] == "1"
    assert headers.get_all("Set-Cookie") == ["a=1", "b=2"]
    assert headers.get_all("X-Both") == ["multi"]  # multiValueHeaders wins, as on API Gateway
    assert headers["x-amzn-RequestId"]


def test_base64_response_body_is_decoded_and_content_type_defaults(
    server: tuple[Stub, str],
) -> None:
    stub, url = server
    png = b"\x89PNG\r\n\x1a\n"
    stub.respond = lambda event, context: {
        "statusCode": 200,
        "body": base64.b64encode(png).decode(),
        "isBase64Encoded": True,
    }
    status, headers, body = call(url, "GET", "/image")
    assert (status, body) == (200, png)
    assert headers["Content-Type"] == "application/json"


def _raise(event: dict[str, Any], context: Any) -> Any:
    raise RuntimeError("handler bug")


@pytest.mark.parametrize(
    "respond",
    [
        _raise,
        lambda event, context: {"statusCode": 200, "body": {"not": "a string"}},
        lambda event, context: {"statusCode": 200, "body": "", "extra": 1},
        lambda event, context: "just a string",
        lambda event, context: {"body": "no status"},
    ],
    ids=["raises", "dict-body", "extra-key", "not-an-object", "no-status"],
)
def test_handler_failure_is_a_502(server: tuple[Stub, str], respond: Responder) -> None:
    stub, url = server
    stub.respond = respond
    status, headers, body = call(url, "GET", "/runs/r1")
    assert status == 502
    assert json.loads(body) == {"message": "Internal server error"}
    assert headers["Content-Type"] == "application/json"
