"""Flowcraft for AWS: durable workflow blueprints, in memory or on Lambda, SQS and DynamoDB.

The names below are imported on first use, so a Lambda handler that needs one small module
(the routes, the environment table) does not pay for the whole engine at cold start.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .analysis import analyze_blueprint, generate_mermaid, lint_blueprint
    from .blueprint import (
        BlueprintError,
        EdgeDefinition,
        NodeConfig,
        NodeDefinition,
        WorkflowBlueprint,
        load_blueprint,
    )
    from .builder import create_flow
    from .context import InMemoryContext
    from .engine import CollectingEventBus, FlowEvent, Middleware
    from .errors import FlowcraftError
    from .nodes import BaseNode, CancellationSignal, NodeContext, NodeResult
    from .runtime import FlowRuntime, WorkflowResult

#: Public name -> the module that defines it.
_HOMES: dict[str, str] = {
    "analyze_blueprint": ".analysis",
    "generate_mermaid": ".analysis",
    "lint_blueprint": ".analysis",
    "BlueprintError": ".blueprint",
    "EdgeDefinition": ".blueprint",
    "NodeConfig": ".blueprint",
    "NodeDefinition": ".blueprint",
    "WorkflowBlueprint": ".blueprint",
    "load_blueprint": ".blueprint",
    "create_flow": ".builder",
    "InMemoryContext": ".context",
    "CollectingEventBus": ".engine",
    "FlowEvent": ".engine",
    "Middleware": ".engine",
    "FlowcraftError": ".errors",
    "BaseNode": ".nodes",
    "CancellationSignal": ".nodes",
    "NodeContext": ".nodes",
    "NodeResult": ".nodes",
    "FlowRuntime": ".runtime",
    "WorkflowResult": ".runtime",
}

__all__ = [
    "BaseNode",
    "BlueprintError",
    "CancellationSignal",
    "CollectingEventBus",
    "EdgeDefinition",
    "FlowEvent",
    "FlowRuntime",
    "FlowcraftError",
    "InMemoryContext",
    "Middleware",
    "NodeConfig",
    "NodeContext",
    "NodeDefinition",
    "NodeResult",
    "WorkflowBlueprint",
    "WorkflowResult",
    "analyze_blueprint",
    "create_flow",
    "generate_mermaid",
    "lint_blueprint",
    "load_blueprint",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'flowcraft_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
