"""A fluent builder for blueprints, for teams who would rather write Python than JSON.

The builder only collects plain data and hands it to ``load_blueprint`` at the end, so a built
blueprint is validated by exactly the same code as a JSON one and its errors name the node or edge
at fault the same way. Implementations given inline (functions or ``BaseNode`` classes) are kept
in a registry beside the blueprint, since a blueprint itself must stay JSON-serialisable.

    blueprint, registry = (
        create_flow("order")
        .node("validate", validate_order, max_retries=2)
        .node("charge", "payments.charge")
        .edge("validate", "charge", condition="result.valid === true")
        .build()
    )
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .blueprint import BlueprintError, NodeConfig, WorkflowBlueprint, load_blueprint

__all__ = ["FlowBuilder", "create_flow"]


def _config_key(key: str) -> str:
    """The camelCase wire name of a config field given in either spelling (unknown keys kept)."""
    field = NodeConfig.model_fields.get(key)
    if field is not None and field.alias:
        return field.alias
    return key


def _is_implementation(value: Any) -> bool:
    """A function, a class, or an object with an ``exec`` method (a ``BaseNode`` instance)."""
    return callable(value) or callable(getattr(value, "exec", None))


class FlowBuilder:
    """Collects nodes, edges and metadata in call order; see ``create_flow``."""

    def __init__(self, blueprint_id: str) -> None:
        self._id = blueprint_id
        self._nodes: list[dict[str, Any]] = []
        self._edges: list[dict[str, Any]] = []
        self._metadata: dict[str, Any] = {}
        self._registry: dict[str, Any] = {}

    def node(
        self,
        node_id: str,
        uses: Any,
        *,
        params: Mapping[str, Any] | None = None,
        inputs: str | Mapping[str, str] | None = None,
        config: NodeConfig | Mapping[str, Any] | None = None,
        **config_kwargs: Any,
    ) -> FlowBuilder:
        """Add a node. ``uses`` is a registry key, or an implementation registered as ``node_id``.

        ``config`` and ``config_kwargs`` (snake_case or camelCase, e.g. ``max_retries=2``) are
        merged, keyword arguments winning. Only what is given is recorded, so a node built here is
        identical to the same node written in JSON (including which config fields were set).
        """
        if isinstance(uses, str):
            key = uses
        elif _is_implementation(uses):
            key = node_id
            self._registry[node_id] = uses
        else:
            raise BlueprintError(
                f"blueprint {self._id!r}: node {node_id!r}: uses must be a registry key or an "
                f"implementation (function or BaseNode), not {type(uses).__name__}"
            )
        definition: dict[str, Any] = {"id": node_id, "uses": key}
        if params is not None:
            definition["params"] = dict(params)
        if inputs is not None:
            definition["inputs"] = inputs if isinstance(inputs, str) else dict(inputs)
        merged = {
            _config_key(key): value for key, value in self._config_dict(node_id, config).items()
        }
        merged.update((_config_key(key), value) for key, value in config_kwargs.items())
        if merged or config is not None:
            definition["config"] = merged
        self._nodes.append(definition)
        return self

    def _config_dict(
        self, node_id: str, config: NodeConfig | Mapping[str, Any] | None
    ) -> dict[str, Any]:
        """The explicitly given config fields as a plain dict (validation happens at the end)."""
        if config is None:
            return {}
        if isinstance(config, NodeConfig):
            return config.model_dump(exclude_unset=True)
        if isinstance(config, Mapping):
            return dict(config)
        raise BlueprintError(
            f"blueprint {self._id!r}: node {node_id!r}: config must be a NodeConfig or a dict, "
            f"not {type(config).__name__}"
        )

    def edge(
        self,
        source: str,
        target: str,
        *,
        action: str | None = None,
        condition: str | None = None,
        transform: str | None = None,
    ) -> FlowBuilder:
        """Add an edge; an unknown end or a bad expression is reported by ``to_blueprint``."""
        definition: dict[str, Any] = {"source": source, "target": target}
        for key, value in (("action", action), ("condition", condition), ("transform", transform)):
            if value is not None:
                definition[key] = value
        self._edges.append(definition)
        return self

    def metadata(self, **values: Any) -> FlowBuilder:
        """Merge values into the blueprint's metadata (e.g. ``version="2"``)."""
        self._metadata.update(values)
        return self

    def register(self, key: str, implementation: Any) -> FlowBuilder:
        """Register an implementation that no node names directly (e.g. a ``fallback`` key)."""
        if not _is_implementation(implementation):
            raise BlueprintError(
                f"blueprint {self._id!r}: registry key {key!r}: not an implementation "
                f"({type(implementation).__name__})"
            )
        self._registry[key] = implementation
        return self

    @property
    def registry(self) -> dict[str, Any]:
        """The implementations given inline, by registry key (a copy: the builder owns its own)."""
        return dict(self._registry)

    def to_dict(self) -> dict[str, Any]:
        """The blueprint as flowcraft JSON (camelCase), before validation."""
        result: dict[str, Any] = {
            "id": self._id,
            "nodes": [
                {**node, "config": dict(node["config"])} if "config" in node else dict(node)
                for node in self._nodes
            ],
            "edges": [dict(edge) for edge in self._edges],
        }
        if self._metadata:
            result["metadata"] = dict(self._metadata)
        return result

    def to_blueprint(self) -> WorkflowBlueprint:
        """The validated blueprint; raises ``BlueprintError`` naming the node or edge at fault."""
        return load_blueprint(self.to_dict())

    def build(self) -> tuple[WorkflowBlueprint, dict[str, Any]]:
        """The validated blueprint and the registry of inline implementations, ready to run."""
        return self.to_blueprint(), self.registry


def create_flow(blueprint_id: str) -> FlowBuilder:
    """Start building the blueprint ``blueprint_id``."""
    return FlowBuilder(blueprint_id)
