"""What a call to the Flowcraft HTTP API can raise.

Each error carries the API's own ``message`` (it names what was wrong: the unknown blueprint,
the field, the run's status), so code and the command line can show it as is. The subclasses
let callers act on the kind of failure without comparing status codes.
"""

from __future__ import annotations

from typing import Any

from ..errors import FlowcraftError as FlowcraftError


class ConfigurationError(FlowcraftError):
    """The client cannot be set up: no API URL, no credentials, an unknown stack, ..."""


class TransportError(FlowcraftError):
    """The API could not be reached (connection refused, DNS, timeout)."""


class ApiError(FlowcraftError):
    """The API answered with an error status; ``message`` is its explanation."""

    def __init__(
        self, status: int, message: str, body: Any = None, *, method: str = "", path: str = ""
    ):
        self.status = status
        self.message = message
        self.body = body
        self.method = method
        self.path = path
        where = f"{method} {path} -> " if method else ""
        super().__init__(f"{where}{status}: {message}")


class BadRequest(ApiError):
    """400: the request itself is wrong (field, JSON, unknown blueprint, bad token)."""


class AccessDenied(ApiError):
    """401/403: missing or wrong credentials, API key, or webhook token."""


class NotFound(ApiError):
    """404: no such run (or route)."""


class Conflict(ApiError):
    """409: the run's status does not allow this (``body["status"]`` says which it has)."""


class ServerError(ApiError):
    """5xx: the API failed; its logs have the details."""


def error_for(status: int, message: str, body: Any, *, method: str, path: str) -> ApiError:
    """The most specific :class:`ApiError` subclass for ``status``."""
    kind: type[ApiError]
    if status == 400 or status == 413 or status == 422:
        kind = BadRequest
    elif status in (401, 403):
        kind = AccessDenied
    elif status == 404:
        kind = NotFound
    elif status == 409:
        kind = Conflict
    elif status >= 500:
        kind = ServerError
    else:
        kind = ApiError
    return kind(status, message, body, method=method, path=path)
