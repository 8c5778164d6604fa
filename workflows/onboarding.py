"""``onboarding``: reuse a whole blueprint (``welcome_kit``) as one step of another.

What it shows: the built-in ``subflow`` node. ``inputs`` copies parent context keys into the
child's context (``{childKey: parentKey}``); ``outputs`` copies child keys back into the parent
(``{parentKey: childKey}``) when the child completes. The child runs inside the parent node's
execution, so the parent commits once with the child's result.
"""

from __future__ import annotations

import re
from typing import Any

from flowcraft_core import NodeContext, NodeResult

SAMPLE_CONTEXT: dict[str, Any] = {
    "employeeName": "Katherine Johnson",
    "email": "katherine@example.com",
    "team": "navigation",
}


async def create_account(ctx: NodeContext) -> NodeResult:
    """Child step 1: derive a username from the name the parent passed in."""
    name: str = await ctx.context.get("name", "")
    username = re.sub(r"[^a-z]+", ".", name.lower()).strip(".") or "new.hire"
    await ctx.context.set("username", username)
    return NodeResult(output={"username": username})


async def send_welcome_kit(ctx: NodeContext) -> NodeResult:
    """Child step 2: send the kit and record its id for the parent to pick up."""
    username = ctx.input["username"]
    kit_id = f"KIT-{username}"
    await ctx.context.set("kitId", kit_id)
    return NodeResult(output={"kitId": kit_id, "sentTo": await ctx.context.get("email")})


async def finish_onboarding(ctx: NodeContext) -> NodeResult:
    """Parent step after the subflow: the mapped ``outputs`` are now in the parent context."""
    return NodeResult(
        output={
            "username": await ctx.context.get("username"),
            "kitId": await ctx.context.get("kitId"),
            "team": await ctx.context.get("team"),
        }
    )


REGISTRY: dict[str, Any] = {
    "create_account": create_account,
    "send_welcome_kit": send_welcome_kit,
    "finish_onboarding": finish_onboarding,
}

#: The child blueprint: registered like any other, so it can also be started on its own.
WELCOME_KIT: dict[str, Any] = {
    "id": "welcome_kit",
    "metadata": {"version": "1", "description": "account + welcome kit (used as a subflow)"},
    "nodes": [
        {"id": "create_account", "uses": "create_account"},
        {"id": "send_kit", "uses": "send_welcome_kit"},
    ],
    "edges": [{"source": "create_account", "target": "send_kit"}],
}

BLUEPRINT: dict[str, Any] = {
    "id": "onboarding",
    "metadata": {"version": "1", "description": "a blueprint reused with the subflow built-in"},
    "nodes": [
        {
            "id": "welcome",
            "uses": "subflow",
            "params": {
                "blueprintId": "welcome_kit",
                "inputs": {"name": "employeeName", "email": "email"},
                "outputs": {"username": "username", "kitId": "kitId"},
            },
        },
        {"id": "done", "uses": "finish_onboarding"},
    ],
    "edges": [{"source": "welcome", "target": "done"}],
}

#: The child blueprint ``welcome`` runs as a subflow.
EXTRA_BLUEPRINTS = (WELCOME_KIT,)
