"""A Python client for Flowcraft's HTTP API, and the ``flowcraft`` command line built on it.

::

    from flowcraft_core.client import FlowcraftClient

    client = FlowcraftClient("http://127.0.0.1:3000")  # make up; or .from_stack("flowcraft")
    run_id = client.start("order", {"orderId": "A-1"}).run_id
    print(client.wait(run_id).status)

Requests to a deployed API are SigV4-signed with the standard AWS credential chain (IAM auth,
the stack's default), carry ``x-api-key`` in API-key mode, and go unsigned to the local server.
"""

from .auth import ApiKeyAuth, Auth, NoAuth, SigV4Auth, choose_auth
from .client import LOCAL_API_URL, FlowcraftClient, resolve_api_url, stack_api
from .errors import (
    AccessDenied,
    ApiError,
    BadRequest,
    ConfigurationError,
    Conflict,
    FlowcraftError,
    NotFound,
    ServerError,
    TransportError,
)
from .models import NodePage, Run, RunAccepted, RunPage, RunSummary

__all__ = [
    "LOCAL_API_URL",
    "AccessDenied",
    "ApiError",
    "ApiKeyAuth",
    "Auth",
    "BadRequest",
    "ConfigurationError",
    "Conflict",
    "FlowcraftClient",
    "FlowcraftError",
    "NoAuth",
    "NodePage",
    "NotFound",
    "Run",
    "RunAccepted",
    "RunPage",
    "RunSummary",
    "ServerError",
    "SigV4Auth",
    "TransportError",
    "choose_auth",
    "resolve_api_url",
    "stack_api",
]
