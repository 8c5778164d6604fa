"""A local HTTP front for ``handlers.api.handler`` that speaks API Gateway's REST proxy format.

Each HTTP request becomes a real REST API (payload 1.0) proxy event, the handler runs in-process
with a Lambda-like context, and its proxy response is mapped back with API Gateway's rules.
Why it is shaped this way, and what it does not emulate: docs/local.md, 'The API server'.
"""

from __future__ import annotations

import base64
import binascii
import importlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from flowcraft_core.routes import resources
from local.lambda_context import DEFAULT_ACCOUNT_ID, DEFAULT_REGION, make_context

logger = logging.getLogger("flowcraft.local")

Handler = Callable[[dict[str, Any], Any], Any]

#: The API's resources, as the stack declares them (``flowcraft_core.routes``).
RESOURCES = resources()
PROXY_RESOURCE = "/{proxy+}"
INTERNAL_SERVER_ERROR = b'{"message": "Internal server error"}'
_RESPONSE_KEYS = {"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"}
#: Headers the server computes itself; a handler's values for them are dropped.
_HOP_BY_HOP = {"content-length", "connection", "transfer-encoding", "keep-alive"}


class MalformedProxyResponse(ValueError):
    """The handler returned something API Gateway would reject (502)."""


def match_resource(path: str) -> tuple[str, dict[str, str] | None]:
    """Map a decoded request path to (resource, pathParameters) like API Gateway's router."""
    if path in ("", "/"):
        return "/", None
    segments = path[1:].split("/")
    for resource in RESOURCES:
        template = resource[1:].split("/")
        if len(template) != len(segments):
            continue
        params: dict[str, str] = {}
        for expected, actual in zip(template, segments, strict=True):
            if expected.startswith("{") and expected.endswith("}"):
                if not actual:
                    break
                params[expected[1:-1]] = actual
            elif expected != actual:
                break
        else:
            return resource, params or None
    return PROXY_RESOURCE, {"proxy": path.lstrip("/")}


def build_event(
    *,
    method: str,
    raw_path: str,
    headers: list[tuple[str, str]],
    body: bytes,
    source_ip: str,
    stage: str = "local",
    account_id: str = DEFAULT_ACCOUNT_ID,
    api_id: str = "local",
    protocol: str = "HTTP/1.1",
    request_id: str | None = None,
) -> dict[str, Any]:
    """The API Gateway REST proxy event (payload 1.0) for one HTTP request."""
    split = urlsplit(raw_path)
    # API Gateway (REST) passes ``path`` as sent (percent-encoded) and decodes only the path
    # parameters; doing the same keeps local runs honest about encoded run ids.
    path = split.path or "/"
    resource, path_parameters = match_resource(path)
    if path_parameters:
        path_parameters = {k: unquote(v) for k, v in path_parameters.items()}
    single_headers, multi_headers = _event_headers(headers, source_ip)
    single_query, multi_query = _last_and_all(parse_qsl(split.query, keep_blank_values=True))
    text, is_base64 = _event_body(body)
    request_context = _request_context(
        resource=resource,
        path=path,
        method=method,
        headers=single_headers,
        source_ip=source_ip,
        stage=stage,
        account_id=account_id,
        api_id=api_id,
        protocol=protocol,
        request_id=request_id or str(uuid.uuid4()),
    )
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": single_headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": single_query or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": request_context,
        "body": text,
        "isBase64Encoded": is_base64,
    }


def _last_and_all(pairs: list[tuple[str, str]]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Name -> last value, and name -> every value: the event's plain and ``multiValue*`` maps."""
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in pairs:
        single[name] = value
        multi.setdefault(name, []).append(value)
    return single, multi


def _event_headers(
    headers: list[tuple[str, str]], source_ip: str
) -> tuple[dict[str, str], dict[str, list[str]]]:
    """The request's headers plus the ``X-Forwarded-*`` ones API Gateway adds if absent."""
    single_headers, multi_headers = _last_and_all(headers)
    lowered = {name.lower() for name in single_headers}
    host = _host(single_headers)
    for name, value in (
        ("X-Forwarded-For", source_ip),
        ("X-Forwarded-Port", host.rsplit(":", 1)[1] if ":" in host else "80"),
        ("X-Forwarded-Proto", "http"),
    ):
        if name.lower() not in lowered:
            single_headers[name] = value
            multi_headers[name] = [value]
    return single_headers, multi_headers


def _header(headers: Mapping[str, str], lowered_name: str) -> str | None:
    """A header's value whatever its capitalization, or ``None``."""
    return next((v for k, v in headers.items() if k.lower() == lowered_name), None)


def _host(headers: Mapping[str, str]) -> str:
    """The ``Host`` the client sent (an HTTP/1.0 client may send none)."""
    host = _header(headers, "host")
    return "127.0.0.1" if host is None else host


def _event_body(body: bytes) -> tuple[str | None, bool]:
    """(body, isBase64Encoded): text when the bytes are UTF-8, base64 otherwise (binary media)."""
    try:
        return (body.decode("utf-8") if body else None), False
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), True


def _request_context(
    *,
    resource: str,
    path: str,
    method: str,
    headers: Mapping[str, str],
    source_ip: str,
    stage: str,
    account_id: str,
    api_id: str,
    protocol: str,
    request_id: str,
) -> dict[str, Any]:
    """The event's ``requestContext``: where the request went and who sent it."""
    now = datetime.now(UTC)
    host = _host(headers)
    return {
        "resourceId": uuid.uuid5(uuid.NAMESPACE_URL, resource).hex[:6],
        "resourcePath": resource,
        "httpMethod": method,
        "extendedRequestId": request_id,
        "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "path": f"/{stage}{path}",
        "accountId": account_id,
        "protocol": protocol,
        "stage": stage,
        "domainPrefix": host.split(".")[0].split(":")[0],
        "requestTimeEpoch": int(now.timestamp() * 1000),
        "requestId": request_id,
        "identity": _identity(source_ip, _header(headers, "user-agent")),
        "domainName": host,
        "apiId": api_id,
    }


def _identity(source_ip: str, user_agent: str | None) -> dict[str, Any]:
    """``requestContext.identity`` for an unauthenticated caller (no IAM, no Cognito)."""
    return {
        "cognitoIdentityPoolId": None,
        "accountId": None,
        "cognitoIdentityId": None,
        "caller": None,
        "sourceIp": source_ip,
        "principalOrgId": None,
        "accessKey": None,
        "cognitoAuthenticationType": None,
        "cognitoAuthenticationProvider": None,
        "userArn": None,
        "userAgent": user_agent,
        "user": None,
    }


def proxy_response(response: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """A Lambda proxy response -> (status, headers, body bytes); raises if API Gateway would 502."""
    if not isinstance(response, Mapping):
        raise MalformedProxyResponse(f"response is a {type(response).__name__}, not an object")
    unexpected = set(response) - _RESPONSE_KEYS
    if unexpected:
        raise MalformedProxyResponse(f"unexpected keys {sorted(unexpected)}")
    status = response.get("statusCode")
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise MalformedProxyResponse(f"invalid statusCode {status!r}")

    merged: dict[str, list[str]] = {}
    names: dict[str, str] = {}
    for name, values in (response.get("multiValueHeaders") or {}).items():
        if not isinstance(values, list):
            raise MalformedProxyResponse(f"multiValueHeaders[{name!r}] is not a list")
        names[name.lower()] = name
        merged[name.lower()] = [_header_value(v) for v in values]
    for name, value in (response.get("headers") or {}).items():
        if name.lower() not in merged:
            names[name.lower()] = name
            merged[name.lower()] = [_header_value(value)]
    if "content-type" not in merged:
        names["content-type"] = "Content-Type"
        merged["content-type"] = ["application/json"]
    headers = [
        (names[key], value)
        for key, values in merged.items()
        if key not in _HOP_BY_HOP
        for value in values
    ]

    body = response.get("body")
    if body is None:
        payload = b""
    elif not isinstance(body, str):
        raise MalformedProxyResponse(f"body is a {type(body).__name__}, not a string")
    elif response.get("isBase64Encoded"):
        try:
            payload = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MalformedProxyResponse(f"body is not valid base64: {exc}") from exc
    else:
        payload = body.encode("utf-8")
    return status, headers, payload


def _header_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class ApiHTTPServer(ThreadingHTTPServer):
    """``ThreadingHTTPServer`` that carries the handler and API settings for its requests."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: Handler,
        *,
        stage: str = "local",
        function_name: str = "flowcraft-api",
        timeout_s: float = 15,  # the stack's API function timeout (API_TIMEOUT_SECONDS)
        region: str = DEFAULT_REGION,
        account_id: str = DEFAULT_ACCOUNT_ID,
    ) -> None:
        super().__init__(address, _RequestHandler)
        self.lambda_handler = handler
        self.stage = stage
        self.function_name = function_name
        self.timeout_s = timeout_s
        self.region = region
        self.account_id = account_id

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ApiHTTPServer

    def do_GET(self) -> None:
        self._invoke()

    def do_POST(self) -> None:
        self._invoke()

    def do_PUT(self) -> None:
        self._invoke()

    def do_PATCH(self) -> None:
        self._invoke()

    def do_DELETE(self) -> None:
        self._invoke()

    def do_OPTIONS(self) -> None:
        self._invoke()

    def do_HEAD(self) -> None:
        self._invoke()

    def log_message(self, format: str, *args: Any) -> None:
        """Route http.server's own messages (errors) through logging instead of stderr."""
        logger.debug("api: " + format, *args)

    def _invoke(self) -> None:
        started = time.monotonic()
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._write(
                411, [("Content-Type", "application/json")], b'{"message": "Length Required"}'
            )
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self._write(400, [("Content-Type", "application/json")], b'{"message": "Bad Request"}')
            return
        body = self.rfile.read(length) if length > 0 else b""
        server = self.server
        request_id = str(uuid.uuid4())
        event = build_event(
            method=self.command,
            raw_path=self.path,
            headers=list(self.headers.items()),
            body=body,
            source_ip=self.client_address[0],
            stage=server.stage,
            account_id=server.account_id,
            protocol=self.request_version,
            request_id=request_id,
        )
        context = make_context(
            server.function_name,
            timeout_s=server.timeout_s,
            region=server.region,
            account_id=server.account_id,
        )
        try:
            status, headers, payload = proxy_response(server.lambda_handler(event, context))
        except MalformedProxyResponse as exc:
            logger.error(
                "api: malformed Lambda proxy response for %s %s: %s", self.command, self.path, exc
            )
            status, headers, payload = (
                502,
                [("Content-Type", "application/json")],
                INTERNAL_SERVER_ERROR,
            )
        except Exception:
            logger.exception("api: handler raised on %s %s", self.command, self.path)
            status, headers, payload = (
                502,
                [("Content-Type", "application/json")],
                INTERNAL_SERVER_ERROR,
            )
        headers.append(("x-amzn-RequestId", request_id))
        self._write(status, headers, payload)
        logger.info(
            "api: %s %s -> %d (%.0f ms)",
            self.command,
            self.path,
            status,
            (time.monotonic() - started) * 1000,
        )

    def _write(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)


def default_handler() -> Handler:
    """``handlers.api.handler``, imported on first use so ``FLOWCRAFT_*`` is set before."""
    module = importlib.import_module("handlers.api")
    handler: Handler = module.handler
    return handler


def serve_api(
    handler: Handler | None = None,
    port: int = 3000,
    *,
    host: str = "127.0.0.1",
    stage: str = "local",
    region: str = DEFAULT_REGION,
    account_id: str = DEFAULT_ACCOUNT_ID,
) -> tuple[ApiHTTPServer, threading.Thread, str]:
    """Start the server in a daemon thread; ``port=0`` picks a free port. Returns its URL too."""
    server = ApiHTTPServer(
        (host, port),
        handler or default_handler(),
        stage=stage,
        region=region,
        account_id=account_id,
    )
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.1},
        name="flowcraft-api",
        daemon=True,
    )
    thread.start()
    logger.info("api: serving on %s", server.url)
    return server, thread, server.url


def shutdown_api(server: ApiHTTPServer, thread: threading.Thread, timeout_s: float = 5) -> None:
    """Stop accepting requests, close the socket and wait for the serving thread."""
    server.shutdown()
    server.server_close()
    thread.join(timeout_s)


__all__ = [
    "INTERNAL_SERVER_ERROR",
    "PROXY_RESOURCE",
    "RESOURCES",
    "ApiHTTPServer",
    "MalformedProxyResponse",
    "build_event",
    "default_handler",
    "match_resource",
    "proxy_response",
    "serve_api",
    "shutdown_api",
]
