"""``webhook``: register an endpoint and park until it is called.

The node's output is ``{"url", "token", "event"}``: whoever calls the URL must present the
token (it is the credential; no AWS signing needed), and the call's body becomes the node's
output, routing on like a ``resume``. In memory, ``FlowRuntime.resume_webhook(blueprint,
result, token, body)`` is the local callback; distributed, the API's
``POST /runs/{runId}/webhooks/{nodeId}`` route. Both drivers make and check endpoints with the
two functions below.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any
from urllib.parse import quote

from ..nodes import NodeContext, NodeResult


def webhook_endpoint(
    run_id: str, node_key: str, base_url: str = "", token: str | None = None
) -> dict[str, Any]:
    """The endpoint of one webhook node instance: its URL (under ``base_url``), a fresh
    secret token (unless given) and its event name."""
    path = f"/runs/{quote(run_id, safe='')}/webhooks/{quote(node_key, safe='')}"
    return {
        "url": base_url.rstrip("/") + path,
        "token": token if token is not None else secrets.token_urlsafe(24),
        "event": f"webhook:{run_id}:{node_key}",
    }


def token_matches(endpoint: Any, token: Any) -> bool:
    """True when ``token`` is the one ``endpoint`` (a webhook node's output) carries; the
    comparison takes constant time."""
    if not isinstance(endpoint, dict) or not isinstance(token, str):
        return False
    expected = endpoint.get("token")
    if not isinstance(expected, str) or not expected:
        return False
    return hmac.compare_digest(expected.encode(), token.encode())


def webhook_node(ctx: NodeContext) -> NodeResult:
    key = ctx.node_id if ctx.iteration == 0 else f"{ctx.node_id}#{ctx.iteration}"
    base_url = str(getattr(ctx.services, "webhook_base_url", "") or "")
    return NodeResult(output=webhook_endpoint(ctx.run_id, key, base_url), awaiting=True)
