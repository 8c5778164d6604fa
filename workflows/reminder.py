"""``reminder``: schedule a reminder, sleep, then send it.

What it shows: the built-in ``sleep`` node (``duration`` in ms). In memory it awaits the
runtime's clock (a ``FakeClock`` in tests, so nothing really waits). Distributed, a sleep over
one second does not hold a Lambda invocation open: the worker parks the job on SQS with a
message delay, and the next invocation picks it up when it is due.
"""

from __future__ import annotations

from typing import Any

from flowcraft_core import NodeContext, NodeResult

#: Kept short so the demo stays quick; long enough (> 1 s) to be parked on the queue.
DELAY_MS = 2000

SAMPLE_CONTEXT: dict[str, Any] = {"to": "ada@example.com", "about": "renew your TLS certificate"}


async def schedule_reminder(ctx: NodeContext) -> NodeResult:
    """Compose the reminder now; the ``sleep`` node passes it through unchanged."""
    return NodeResult(
        output={
            "to": await ctx.context.get("to"),
            "text": f"Reminder: {await ctx.context.get('about')}",
            "delayMs": DELAY_MS,
        }
    )


async def send_reminder(ctx: NodeContext) -> NodeResult:
    """Send what ``schedule`` composed (input: the sleep's pass-through of it)."""
    reminder: dict[str, Any] = ctx.input
    await ctx.context.set("reminded", True)
    return NodeResult(output={"sent": True, "to": reminder["to"], "text": reminder["text"]})


REGISTRY: dict[str, Any] = {
    "schedule_reminder": schedule_reminder,
    "send_reminder": send_reminder,
}

BLUEPRINT: dict[str, Any] = {
    "id": "reminder",
    "metadata": {"version": "1", "description": "a durable delay with the sleep built-in"},
    "nodes": [
        {"id": "schedule", "uses": "schedule_reminder"},
        {"id": "wait_a_bit", "uses": "sleep", "params": {"duration": DELAY_MS}},
        {"id": "send_reminder", "uses": "send_reminder"},
    ],
    "edges": [
        {"source": "schedule", "target": "wait_a_bit"},
        {"source": "wait_a_bit", "target": "send_reminder"},
    ],
}
