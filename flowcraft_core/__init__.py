"""Flowcraft for AWS: durable workflow blueprints, in memory or on Lambda, SQS and DynamoDB."""

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
