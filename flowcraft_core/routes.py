"""The HTTP API's routes, listed once: the handler, the local server, the stack's tests and the
client read them from here, so a route cannot exist in one place and be missing in another."""

from __future__ import annotations

from typing import NamedTuple


class Route(NamedTuple):
    method: str
    path: str
    #: False for the one route outside AWS authorization (a webhook's token is its credential).
    signed: bool = True

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


ROUTES: tuple[Route, ...] = (
    Route("POST", "/runs"),
    Route("GET", "/runs"),
    Route("GET", "/runs/{runId}"),
    Route("GET", "/runs/{runId}/nodes"),
    Route("POST", "/runs/{runId}/resume"),
    Route("POST", "/runs/{runId}/cancel"),
    Route("POST", "/runs/{runId}/redrive"),
    Route("POST", "/runs/{runId}/webhooks/{nodeId}", signed=False),
    Route("GET", "/openapi.json"),
)


def resources() -> tuple[str, ...]:
    """The API's resources (paths), most specific last within a prefix, each once."""
    return tuple(dict.fromkeys(route.path for route in ROUTES))
