"""A fluent builder for blueprints, for teams who would rather write Python than JSON.

Start with ``create_flow``; ``FlowBuilder.build`` returns the validated blueprint and its registry.
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
    """Collects nodes, edges and metadata in call order; see ``create_flow``.

    It only collects plain data and hands it to ``load_blueprint`` at the end, so a built
    blueprint is validated by exactly the same code as a JSON one and its errors name the node or
    edge at fault the same way. Implementations given inline (functions or ``BaseNode`` classes)
    are kept in a registry beside the blueprint, since a blueprint must stay JSON-serialisable.
    """

    def __init__(self, blueprint_id: str) -> None:
        self._id = blueprint_id
        self._nodes: list[dict[str, Any]] = []
        self._edges: list[dict[str, Any]] = []
        self._metadata: dict[str, Any] = {}
        self._registry: dict[str, Any] = {}
        self._loops: list[dict[str, str]] = []
        self._batches: list[dict[str, str]] = []
        self._entry_points: list[str] = []

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

    # ------------------------------------------------------------------ flowcraft's patterns
    def loop(
        self, loop_id: str, *, start_node_id: str, end_node_id: str, condition: str
    ) -> FlowBuilder:
        """flowcraft's ``.loop``: a ``loop-controller`` node ``loop_id`` (an ``any`` join) that,
        after ``end_node_id``, runs the body from ``start_node_id`` again while ``condition``
        (an expression over the context) holds. Edges you add from ``loop_id`` to elsewhere
        are its exits (action ``break`` unless you give one). As in flowcraft, the body's start
        and the exits receive the output of ``end_node_id``."""
        self._loops.append(
            {"id": loop_id, "start": start_node_id, "end": end_node_id, "condition": condition}
        )
        self._nodes.append(
            {
                "id": loop_id,
                "uses": "loop-controller",
                "params": {"condition": condition},
                "config": {"joinStrategy": "any"},
            }
        )
        self.edge(end_node_id, loop_id)
        self.edge(loop_id, start_node_id, action="continue", transform=f'context["{end_node_id}"]')
        return self

    def batch(
        self,
        batch_id: str,
        worker: Any,
        *,
        input_key: str,
        output_key: str | None = None,
        chunk_size: int | None = None,
    ) -> FlowBuilder:
        """flowcraft's ``.batch``: ``<id>_scatter`` runs ``worker`` (a registry key or an
        implementation) on each item of the context list ``input_key``, ``<id>_gather``
        stores the results under ``output_key`` (default: the gather node's id). Edges to
        and from ``batch_id`` are rewired to the scatter and gather nodes."""
        scatter_id, gather_id = f"{batch_id}_scatter", f"{batch_id}_gather"
        if isinstance(worker, str):
            worker_key = worker
        elif _is_implementation(worker):
            worker_key = f"{batch_id}_worker"
            self._registry[worker_key] = worker
        else:
            raise BlueprintError(
                f"blueprint {self._id!r}: batch {batch_id!r}: worker must be a registry key or "
                f"an implementation, not {type(worker).__name__}"
            )
        params: dict[str, Any] = {"workerUsesKey": worker_key, "gatherNodeId": gather_id}
        if output_key is not None:
            params["outputKey"] = output_key
        if chunk_size is not None:
            params["chunkSize"] = chunk_size
        self._batches.append({"id": batch_id, "scatter": scatter_id, "gather": gather_id})
        self._nodes.append(
            {"id": scatter_id, "uses": "batch-scatter", "inputs": input_key, "params": params}
        )
        gather_params: dict[str, Any] = {"gatherNodeId": gather_id}
        if output_key is not None:
            gather_params["outputKey"] = output_key
        self._nodes.append(
            {
                "id": gather_id,
                "uses": "batch-gather",
                "params": gather_params,
                "config": {"joinStrategy": "all"},
            }
        )
        self.edge(scatter_id, gather_id)
        return self

    def sleep(self, node_id: str, *, duration: float | str) -> FlowBuilder:
        """A ``sleep`` node: ``duration`` in milliseconds or a string like ``"5s"``."""
        self._nodes.append({"id": node_id, "uses": "sleep", "params": {"duration": duration}})
        return self

    def wait(self, node_id: str, **options: Any) -> FlowBuilder:
        """A ``wait`` node: the run parks there until resumed (``params``/``config`` may be
        given as for ``node``)."""
        return self.node(node_id, "wait", **options)

    def set_cycle_entry_point(self, node_id: str) -> FlowBuilder:
        """Where a cycle that nothing feeds is entered (``metadata.cycleEntryPoints``)."""
        if node_id not in self._entry_points:
            self._entry_points.append(node_id)
        return self

    def to_graph_representation(self) -> dict[str, Any]:
        """flowcraft's UI graph: loop controllers replaced by a loop-back edge from the body's
        end to its start, each scatter/gather pair by one ``batch-worker`` node."""
        blueprint = self.to_dict()
        nodes: list[dict[str, Any]] = []
        edges: list[dict[str, Any]] = []
        ignored: set[str] = set()
        for loop in self._loops:
            ignored.add(loop["id"])
            edges.extend(_loop_graph_edges(loop, blueprint["edges"]))
        node_by_id = {node["id"]: node for node in blueprint["nodes"]}
        for node in blueprint["nodes"]:
            if node["uses"] != "batch-scatter":
                continue
            gather_id = (node.get("params") or {}).get("gatherNodeId")
            if not gather_id:
                continue
            ignored.update({node["id"], gather_id})
            batch_id = node["id"].removesuffix("_scatter")
            nodes.append(_batch_graph_node(batch_id, node, node_by_id.get(gather_id, {})))
            edges.extend(_batch_graph_edges(batch_id, node["id"], gather_id, blueprint["edges"]))
        nodes.extend(node for node in blueprint["nodes"] if node["id"] not in ignored)
        _add_plain_edges(edges, blueprint["edges"], ignored)
        return {"nodes": nodes, "edges": edges}

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
        """The blueprint as flowcraft JSON (camelCase), before validation. As flowcraft does,
        edges from a loop controller other than into its body become its ``break`` exits, and
        edges to or from a batch's id are rewired to its scatter or gather node."""
        result: dict[str, Any] = {
            "id": self._id,
            "nodes": [
                {**node, "config": dict(node["config"])} if "config" in node else dict(node)
                for node in self._nodes
            ],
            "edges": [self._rewired(dict(edge)) for edge in self._edges],
        }
        metadata = dict(self._metadata)
        if self._entry_points:
            metadata["cycleEntryPoints"] = list(self._entry_points)
        if metadata:
            result["metadata"] = metadata
        return result

    def _rewired(self, edge: dict[str, Any]) -> dict[str, Any]:
        for loop in self._loops:
            if edge["source"] == loop["id"] and edge["target"] != loop["start"]:
                edge.setdefault("action", "break")
                edge["transform"] = f'context["{loop["end"]}"]'  # the body's last output
        for batch in self._batches:
            if edge["target"] == batch["id"]:
                edge["target"] = batch["scatter"]
            if edge["source"] == batch["id"]:
                edge["source"] = batch["gather"]
        return edge

    def to_blueprint(self) -> WorkflowBlueprint:
        """The validated blueprint; raises ``BlueprintError`` naming the node or edge at fault."""
        if not self._nodes:
            raise BlueprintError(f"blueprint {self._id!r}: cannot build a flow with no nodes")
        known = {node["id"] for node in self._nodes}
        for loop in self._loops:
            for end in ("start", "end"):
                if loop[end] not in known:
                    raise BlueprintError(
                        f"blueprint {self._id!r}: loop {loop['id']!r} references non-existent "
                        f"{end} node {loop[end]!r}"
                    )
        return load_blueprint(self.to_dict())

    def build(self) -> tuple[WorkflowBlueprint, dict[str, Any]]:
        """The validated blueprint and the registry of inline implementations, ready to run."""
        return self.to_blueprint(), self.registry


def _loop_graph_edges(loop: Mapping[str, str], edges: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The UI edges of a loop without its controller: the loop-back, then its exits leaving
    from the body's end and the edges into it entering the body's start."""
    condition = loop["condition"]
    result: list[dict[str, Any]] = [
        {
            "source": loop["end"],
            "target": loop["start"],
            "data": {
                "isLoopback": True,
                "condition": condition,
                "label": f"continue if: {condition}",
            },
        }
    ]
    for edge in edges:
        if edge["source"] == loop["id"] and edge.get("action") == "break":
            result.append({**edge, "source": loop["end"]})
        elif edge["target"] == loop["id"] and edge["source"] != loop["end"]:
            result.append({**edge, "target": loop["start"]})
    return result


def _batch_graph_node(
    batch_id: str, scatter: Mapping[str, Any], gather: Mapping[str, Any]
) -> dict[str, Any]:
    """The one ``batch-worker`` node that stands for a scatter/gather pair in the UI."""
    params = scatter.get("params") or {}
    return {
        "id": batch_id,
        "uses": params.get("workerUsesKey"),
        "type": "batch-worker",
        "data": {
            "label": f"Batch: {batch_id}",
            "isBatchPlaceholder": True,
            "workerUsesKey": params.get("workerUsesKey"),
            "inputKey": scatter.get("inputs"),
            "outputKey": (gather.get("params") or {}).get("outputKey"),
        },
    }


def _batch_graph_edges(
    batch_id: str, scatter_id: str, gather_id: str, edges: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The edges into the scatter node and out of the gather node, moved to the batch node."""
    result: list[dict[str, Any]] = []
    for edge in edges:
        if edge["target"] == scatter_id:
            result.append({**edge, "target": batch_id})
        if edge["source"] == gather_id:
            result.append({**edge, "source": batch_id})
    return result


def _add_plain_edges(
    graph_edges: list[dict[str, Any]], edges: list[dict[str, Any]], ignored: set[str]
) -> None:
    """Append the edges between shown nodes, unless one with the same ends and action is
    already there (a rewired edge, or an earlier duplicate)."""
    for edge in edges:
        if edge["source"] in ignored or edge["target"] in ignored:
            continue
        if not any(
            e["source"] == edge["source"]
            and e["target"] == edge["target"]
            and e.get("action") == edge.get("action")
            for e in graph_edges
        ):
            graph_edges.append(edge)


def create_flow(blueprint_id: str) -> FlowBuilder:
    """Start building the blueprint ``blueprint_id``::

    blueprint, registry = (
        create_flow("order")
        .node("validate", validate_order, max_retries=2)
        .node("charge", "payments.charge")
        .edge("validate", "charge", condition="result.valid === true")
        .build()
    )
    """
    return FlowBuilder(blueprint_id)
