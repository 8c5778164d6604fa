"""``order``: validate an order, do three independent checks in parallel, then ship it.

What it shows:

* **retries** - ``validate`` fails its first attempt (a simulated inventory-service timeout) and
  succeeds on the retry, so the timeline shows ``attempts: 2``;
* **fan-out / all-join** - ``reserve_stock``, ``charge_payment`` and ``fraud_check`` run in
  parallel and ``confirm`` waits for all three (its input is ``{node id: output}``);
* **conditions and skips** - ``confirm`` routes orders over 100 to ``vip_gift`` and the rest to
  ``ship``; the branch not taken is *skipped*, and ``notify`` (where both branches merge) still
  runs because one of its inputs was taken.
"""

from __future__ import annotations

from typing import Any

from flowcraft_core import NodeContext, NodeResult

#: Orders strictly above this total get a gift and express shipping.
VIP_THRESHOLD = 100

SAMPLE_CONTEXT: dict[str, Any] = {
    "orderId": "A-1001",
    "customer": "ada@example.com",
    "items": [
        {"sku": "KB-01", "name": "Mechanical keyboard", "qty": 1, "price": 89.5},
        {"sku": "MS-02", "name": "Wireless mouse", "qty": 2, "price": 20.0},
    ],
}


class TransientError(RuntimeError):
    """A failure worth retrying (network blip, throttling): the node's retry policy handles it."""


async def validate_order(ctx: NodeContext) -> NodeResult:
    """Check the order and compute its total; the first attempt fails on purpose.

    Failing on ``ctx.attempt == 1`` is deterministic, so the demo and the tests always show one
    retry, in memory and on Lambda alike (the distributed worker carries the attempt number).
    """
    if ctx.attempt == 1:
        raise TransientError("inventory service timed out (simulated; retried)")
    items: list[dict[str, Any]] = await ctx.context.get("items", [])
    if not items:
        raise ValueError("order has no items")
    total = round(sum(item["qty"] * item["price"] for item in items), 2)
    await ctx.context.set("total", total)
    return NodeResult(
        output={
            "orderId": await ctx.context.get("orderId"),
            "customer": await ctx.context.get("customer"),
            "skus": [item["sku"] for item in items],
            "total": total,
        }
    )


def reserve_stock(ctx: NodeContext) -> NodeResult:
    """Reserve every SKU of the validated order (input: ``validate``'s output)."""
    return NodeResult(output={"reserved": ctx.input["skus"], "warehouse": "DUB-1"})


def charge_payment(ctx: NodeContext) -> NodeResult:
    """Charge the order total; a real one would call the payment provider idempotently."""
    order = ctx.input
    return NodeResult(output={"chargeId": f"ch_{order['orderId']}", "amount": order["total"]})


def fraud_check(ctx: NodeContext) -> NodeResult:
    """Score the order; an unusually large order raises the score."""
    score = 0.9 if ctx.input["total"] > 10_000 else 0.05
    return NodeResult(output={"score": score, "approved": score < 0.5})


async def confirm_order(ctx: NodeContext) -> NodeResult:
    """Join of the three checks: refuse the order if fraud screening did not approve it."""
    checks: dict[str, Any] = ctx.input
    if not checks["fraud_check"]["approved"]:
        raise ValueError(f"order rejected by fraud screening: {checks['fraud_check']}")
    return NodeResult(
        output={
            "orderId": await ctx.context.get("orderId"),
            "total": checks["charge_payment"]["amount"],
            "chargeId": checks["charge_payment"]["chargeId"],
        }
    )


def add_vip_gift(ctx: NodeContext) -> NodeResult:
    """Big orders ship express with a gift."""
    return NodeResult(output={"carrier": "express", "gift": "tote bag", **ctx.input})


def ship_standard(ctx: NodeContext) -> NodeResult:
    """Everything else ships standard."""
    return NodeResult(output={"carrier": "standard", **ctx.input})


async def notify_customer(ctx: NodeContext) -> NodeResult:
    """Merge point of the two shipping branches: exactly one of them is in the input."""
    branch, shipment = next(iter(ctx.input.items()))
    customer = await ctx.context.get("customer")
    return NodeResult(
        output={
            "to": customer,
            "message": f"Order {shipment['orderId']} is on its way ({shipment['carrier']}).",
            "via": branch,
        }
    )


REGISTRY: dict[str, Any] = {
    "validate_order": validate_order,
    "reserve_stock": reserve_stock,
    "charge_payment": charge_payment,
    "fraud_check": fraud_check,
    "confirm_order": confirm_order,
    "add_vip_gift": add_vip_gift,
    "ship_standard": ship_standard,
    "notify_customer": notify_customer,
}

BLUEPRINT: dict[str, Any] = {
    "id": "order",
    "metadata": {"version": "1", "description": "validate, check in parallel, ship, notify"},
    "nodes": [
        {
            "id": "validate",
            "uses": "validate_order",
            "config": {"maxRetries": 2, "retryDelay": 200},
        },
        {"id": "reserve_stock", "uses": "reserve_stock"},
        {"id": "charge_payment", "uses": "charge_payment"},
        {"id": "fraud_check", "uses": "fraud_check"},
        {"id": "confirm", "uses": "confirm_order", "config": {"joinStrategy": "all"}},
        {"id": "vip_gift", "uses": "add_vip_gift"},
        {"id": "ship", "uses": "ship_standard"},
        {"id": "notify", "uses": "notify_customer"},
    ],
    "edges": [
        {"source": "validate", "target": "reserve_stock"},
        {"source": "validate", "target": "charge_payment"},
        {"source": "validate", "target": "fraud_check"},
        {"source": "reserve_stock", "target": "confirm"},
        {"source": "charge_payment", "target": "confirm"},
        {"source": "fraud_check", "target": "confirm"},
        {
            "source": "confirm",
            "target": "vip_gift",
            "condition": f"result.output.total > {VIP_THRESHOLD}",
        },
        {
            "source": "confirm",
            "target": "ship",
            "condition": f"result.output.total <= {VIP_THRESHOLD}",
        },
        {"source": "vip_gift", "target": "notify"},
        {"source": "ship", "target": "notify"},
    ],
}
