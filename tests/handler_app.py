"""A small ``FLOWCRAFT_APP`` for the handler tests (``FLOWCRAFT_APP=tests.handler_app``).

The example app in ``workflows/`` is written separately and may change; these tests need fixed,
tiny blueprints so each test costs few AWS calls:

* ``order``: ``validate`` -> ``charge`` -> ``ship`` (the ids the sample events in ``events/`` use);
* ``flaky``: ``boom`` always fails (no retries), so the run fails;
* ``approval``: ``submit`` -> ``manager_approval`` (built-in ``wait``) -> ``provision_access`` on
  ``approve`` or ``notify_rejection`` on ``reject``;
* ``sleepy``: ``submit`` -> ``pause`` (built-in ``sleep``, 1.5 s: parked on the queue) -> ...;
* ``slow``: ``nap`` has a 20 s timeout, so the worker reserves 21 s before starting it.
"""

from __future__ import annotations

from typing import Any

from flowcraft_core import NodeContext, NodeResult


async def validate(ctx: NodeContext) -> NodeResult:
    items = await ctx.context.get("items", [])
    total = sum(item["qty"] * item["price"] for item in items)
    await ctx.context.set("total", total)
    return NodeResult(output={"total": total})


def charge(ctx: NodeContext) -> NodeResult:
    return NodeResult(output={"charged": ctx.input["total"]})


def ship(ctx: NodeContext) -> NodeResult:
    return NodeResult(output={"carrier": "standard", "charged": ctx.input["charged"]})


def boom(ctx: NodeContext) -> NodeResult:
    raise RuntimeError("card declined (on purpose)")


def submit(ctx: NodeContext) -> NodeResult:
    return NodeResult(output={"request": "access"})


def provision_access(ctx: NodeContext) -> NodeResult:
    return NodeResult(output={"granted": True, "by": (ctx.input or {}).get("approver")})


def notify_rejection(ctx: NodeContext) -> NodeResult:
    return NodeResult(output={"granted": False})


def nap(ctx: NodeContext) -> NodeResult:
    return NodeResult(output="rested")


registry: dict[str, Any] = {
    "validate": validate,
    "charge": charge,
    "ship": ship,
    "boom": boom,
    "submit": submit,
    "provision_access": provision_access,
    "notify_rejection": notify_rejection,
    "nap": nap,
}

blueprints: dict[str, dict[str, Any]] = {
    "order": {
        "id": "order",
        "nodes": [
            {"id": "validate", "uses": "validate"},
            {"id": "charge", "uses": "charge"},
            {"id": "ship", "uses": "ship"},
        ],
        "edges": [
            {"source": "validate", "target": "charge"},
            {"source": "charge", "target": "ship"},
        ],
    },
    "flaky": {
        "id": "flaky",
        "nodes": [{"id": "boom", "uses": "boom"}],
        "edges": [],
    },
    "approval": {
        "id": "approval",
        "nodes": [
            {"id": "submit", "uses": "submit"},
            {"id": "manager_approval", "uses": "wait"},
            {"id": "provision_access", "uses": "provision_access"},
            {"id": "notify_rejection", "uses": "notify_rejection"},
        ],
        "edges": [
            {"source": "submit", "target": "manager_approval"},
            {"source": "manager_approval", "target": "provision_access", "action": "approve"},
            {"source": "manager_approval", "target": "notify_rejection", "action": "reject"},
        ],
    },
    "hooked": {
        "id": "hooked",
        "nodes": [
            {"id": "submit", "uses": "submit"},
            {"id": "payment", "uses": "webhook"},
            {"id": "provision_access", "uses": "provision_access"},
        ],
        "edges": [
            {"source": "submit", "target": "payment"},
            {"source": "payment", "target": "provision_access"},
        ],
    },
    "sleepy": {
        "id": "sleepy",
        "nodes": [
            {"id": "submit", "uses": "submit"},
            {"id": "pause", "uses": "sleep", "params": {"duration": 1500}},
            {"id": "notify_rejection", "uses": "notify_rejection"},
        ],
        "edges": [
            {"source": "submit", "target": "pause"},
            {"source": "pause", "target": "notify_rejection"},
        ],
    },
    "slow": {
        "id": "slow",
        "nodes": [{"id": "nap", "uses": "nap", "config": {"timeout": 20000}}],
        "edges": [],
    },
}

dependencies: dict[str, Any] = {}

SAMPLE_CONTEXT: dict[str, Any] = {"items": [{"sku": "KB-01", "qty": 2, "price": 10.5}]}
