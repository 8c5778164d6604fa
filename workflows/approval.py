"""``approval``: a request parks the run until a person approves or rejects it.

What it shows: the built-in ``wait`` node. The run's status becomes ``awaiting`` and no compute
is held while it waits (distributed: nothing is on the queue at all). Someone resumes it with
``POST /runs/{runId}/resume {"action": "approve" | "reject", "output": {...}}``; the action
routes the outgoing edges, and the branch not chosen is skipped.
"""

from __future__ import annotations

from typing import Any

from flowcraft_core import NodeContext, NodeResult

SAMPLE_CONTEXT: dict[str, Any] = {
    "requestId": "REQ-42",
    "employee": "grace@example.com",
    "system": "billing-db (read-only)",
    "reason": "quarter-end reporting",
}

#: What an approver sends with ``action: approve`` in the demo and the tests.
SAMPLE_APPROVAL: dict[str, Any] = {"approver": "lin@example.com", "note": "ok until 30 June"}


async def submit_request(ctx: NodeContext) -> NodeResult:
    """Record the request; its output is what the approver is shown."""
    return NodeResult(
        output={
            "requestId": await ctx.context.get("requestId"),
            "employee": await ctx.context.get("employee"),
            "system": await ctx.context.get("system"),
        }
    )


async def provision_access(ctx: NodeContext) -> NodeResult:
    """Grant access; its input is the ``output`` the approver resumed the run with."""
    decision = ctx.input or {}
    await ctx.context.set("approvedBy", decision.get("approver"))
    return NodeResult(
        output={
            "granted": await ctx.context.get("system"),
            "to": await ctx.context.get("employee"),
            "approvedBy": decision.get("approver"),
        }
    )


async def notify_rejection(ctx: NodeContext) -> NodeResult:
    """Tell the employee why not (input: the approver's resume output)."""
    decision = ctx.input or {}
    return NodeResult(
        output={
            "to": await ctx.context.get("employee"),
            "message": f"Access refused: {decision.get('note', 'no reason given')}",
        }
    )


REGISTRY: dict[str, Any] = {
    "submit_request": submit_request,
    "provision_access": provision_access,
    "notify_rejection": notify_rejection,
}

BLUEPRINT: dict[str, Any] = {
    "id": "approval",
    "metadata": {"version": "1", "description": "human approval with the wait built-in"},
    "nodes": [
        {"id": "submit", "uses": "submit_request"},
        {"id": "manager_approval", "uses": "wait"},
        {"id": "provision_access", "uses": "provision_access"},
        {"id": "notify_rejection", "uses": "notify_rejection"},
    ],
    "edges": [
        {"source": "submit", "target": "manager_approval"},
        {"source": "manager_approval", "target": "provision_access", "action": "approve"},
        {"source": "manager_approval", "target": "notify_rejection", "action": "reject"},
    ],
}
