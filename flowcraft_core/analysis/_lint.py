"""``lint_blueprint``: every problem with a blueprint as issues with stable codes.

It never raises on a bad blueprint: it is the tool a user reaches for precisely when loading
fails, so it also accepts the raw dict (or JSON text) and reports every problem it can find.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from ..blueprint import (
    MAX_ID_LENGTH,
    BlueprintError,
    EdgeDefinition,
    NodeDefinition,
    WorkflowBlueprint,
    load_blueprint,
)
from ..builtins.names import (
    BATCH_GATHER,
    BATCH_SCATTER,
    BUILTIN_NODE_NAMES,
    SUBFLOW,
)
from ..errors import FlowcraftError
from ._lint_graph import _graph_issues
from ._types import BlueprintInput, LintIssue, LintResult, _Parsed


def _validation_messages(exc: ValidationError, prefix: str) -> list[str]:
    """pydantic errors as ``prefix: field.path: message`` lines (camelCase field names)."""
    lines = []
    for error in exc.errors():
        where = ".".join(str(step) for step in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"{prefix}: {where}: {message}" if where else f"{prefix}: {message}")
    return lines


def _node_label(index: int, item: Any) -> str:
    if isinstance(item, Mapping) and isinstance(item.get("id"), str):
        return f"nodes[{index}] (id {item['id']!r})"
    return f"nodes[{index}]"


def _edge_label(index: int, item: Any) -> str:
    if isinstance(item, Mapping):
        return f"edges[{index}] ({item.get('source')!r} -> {item.get('target')!r})"
    return f"edges[{index}]"


def _parse_leniently(data: Mapping[str, Any], load_error: BlueprintError) -> _Parsed:
    """Salvage what validates from a blueprint dict that failed to load.

    Nodes and edges are validated one by one so a single bad field does not hide the rest of the
    graph from lint; reference and expression checks are left to the shared lint passes so they
    get their specific codes. If no pass finds an error although loading failed, ``lint_blueprint``
    keeps the loader's problems as ``INVALID_BLUEPRINT`` issues, so no problem is ever lost.
    """
    issues: list[LintIssue] = []
    blueprint_id = _lenient_id(data.get("id"), issues)
    raw_nodes = _lenient_node_list(data.get("nodes"), issues)
    raw_edges = _lenient_edge_list(data.get("edges"), issues)
    metadata = _lenient_metadata(data.get("metadata"), issues)
    nodes = _lenient_nodes(raw_nodes, issues)
    edges = _lenient_edges(raw_edges, issues)
    return _Parsed(blueprint_id, nodes, edges, metadata, issues, load_error)


def _lenient_id(raw_id: Any, issues: list[LintIssue]) -> str:
    """The blueprint's id (``<no id>`` when it is not a string); a bad one is an issue."""
    if not isinstance(raw_id, str) or not raw_id:
        issues.append(
            LintIssue("INVALID_BLUEPRINT", "error", "id: the blueprint needs a non-empty string id")
        )
    elif len(raw_id) > MAX_ID_LENGTH:
        issues.append(
            LintIssue(
                "INVALID_BLUEPRINT",
                "error",
                f"id: blueprint id is longer than {MAX_ID_LENGTH} characters",
            )
        )
    return raw_id if isinstance(raw_id, str) else "<no id>"


def _lenient_node_list(raw_nodes: Any, issues: list[LintIssue]) -> list[Any]:
    """The raw node list; anything but a non-empty list is an issue (and an empty list)."""
    if not isinstance(raw_nodes, list) or not raw_nodes:
        issues.append(
            LintIssue("INVALID_BLUEPRINT", "error", "nodes: the blueprint needs a non-empty list")
        )
        return raw_nodes if isinstance(raw_nodes, list) else []
    return raw_nodes


def _lenient_edge_list(raw_edges: Any, issues: list[LintIssue]) -> list[Any]:
    """The raw edge list; missing means none, anything but a list is an issue."""
    if raw_edges is None:
        return []
    if not isinstance(raw_edges, list):
        issues.append(LintIssue("INVALID_BLUEPRINT", "error", "edges: must be a list"))
        return []
    return raw_edges


def _lenient_metadata(metadata: Any, issues: list[LintIssue]) -> Mapping[str, Any]:
    """The metadata object; missing means empty, anything but an object is an issue."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        issues.append(LintIssue("INVALID_BLUEPRINT", "error", "metadata: must be an object"))
        return {}
    return metadata


def _lenient_nodes(
    raw_nodes: list[Any], issues: list[LintIssue]
) -> list[tuple[str, NodeDefinition | None]]:
    """Validate each node on its own; one that fails but has an id still counts for the graph."""
    nodes: list[tuple[str, NodeDefinition | None]] = []
    for index, item in enumerate(raw_nodes):
        node_id = item.get("id") if isinstance(item, Mapping) else None
        try:
            node = NodeDefinition.model_validate(item)
            nodes.append((node.id, node))
        except ValidationError as exc:
            if isinstance(node_id, str) and node_id:
                nodes.append((node_id, None))
            for line in _validation_messages(exc, _node_label(index, item)):
                issues.append(
                    LintIssue(
                        "INVALID_NODE",
                        "error",
                        line,
                        node_id=node_id if isinstance(node_id, str) else None,
                    )
                )
    return nodes


def _lenient_edges(
    raw_edges: list[Any], issues: list[LintIssue]
) -> list[tuple[int, EdgeDefinition]]:
    """Validate each edge on its own, keeping those that validate with their index."""
    edges: list[tuple[int, EdgeDefinition]] = []
    for index, item in enumerate(raw_edges):
        edge = _lenient_edge(index, item, issues)
        if edge is not None:
            edges.append((index, edge))
    return edges


def _lenient_edge(index: int, item: Any, issues: list[LintIssue]) -> EdgeDefinition | None:
    """One edge, or None after reporting why it is unusable.

    Its expressions are kept as written, uncompiled: the shared pass reports those that do not
    compile (``INVALID_EXPRESSION``), so only their type is checked here.
    """
    label = _edge_label(index, item)
    if not isinstance(item, Mapping):
        issues.append(
            LintIssue("INVALID_EDGE", "error", f"{label}: must be an object", edge_index=index)
        )
        return None
    expressions = {key: item.get(key) for key in ("condition", "transform")}
    try:
        edge = EdgeDefinition.model_validate(
            {key: value for key, value in item.items() if key not in expressions}
        )
    except ValidationError as exc:
        for line in _validation_messages(exc, label):
            issues.append(LintIssue("INVALID_EDGE", "error", line, edge_index=index))
        return None
    bad_types = [
        key
        for key, value in expressions.items()
        if value is not None and not isinstance(value, str)
    ]
    for key in bad_types:
        issues.append(
            LintIssue(
                "INVALID_EDGE",
                "error",
                f"{label}: {key}: must be a string expression",
                edge_index=index,
            )
        )
    return None if bad_types else edge.model_copy(update=expressions)


def _parse(blueprint: Any) -> _Parsed:
    """Turn any accepted input into nodes and edges for lint, without raising on bad input."""
    if isinstance(blueprint, str | bytes):
        try:
            blueprint = json.loads(blueprint)
        except json.JSONDecodeError as exc:
            issue = LintIssue("INVALID_BLUEPRINT", "error", f"blueprint is not valid JSON: {exc}")
            return _Parsed("<no id>", [], [], {}, [issue])
    loaded_here = False
    if isinstance(blueprint, WorkflowBlueprint):
        model = blueprint
    elif isinstance(blueprint, Mapping):
        try:
            model = load_blueprint(blueprint)
            loaded_here = True
        except BlueprintError as exc:
            return _parse_leniently(blueprint, exc)
    else:
        issue = LintIssue(
            "INVALID_BLUEPRINT",
            "error",
            f"blueprint must be a JSON object, not {type(blueprint).__name__}",
        )
        return _Parsed("<no id>", [], [], {}, [issue])
    return _Parsed(
        model.id,
        [(node.id, node) for node in model.nodes],
        list(enumerate(model.edges)),
        model.metadata,
        [],
        expressions_checked=loaded_here,
    )


def _compile_error(source: str, cache: dict[str, str | None]) -> str | None:
    """The expression's compile error, or None when it compiles (memoised per lint run)."""
    if source not in cache:
        from ..expressions import ExpressionError, compile_expression

        try:
            compile_expression(source)
            cache[source] = None
        except ExpressionError as exc:
            cache[source] = str(exc) or type(exc).__name__
    return cache[source]


def lint_blueprint(
    blueprint: BlueprintInput,
    registry: Mapping[str, Any] | None = None,
    blueprints: Mapping[str, Any] | None = None,
) -> LintResult:
    """Every problem with a blueprint, as issues with stable codes; never raises on bad input.

    Accepts a model, a dict or JSON text. Implementation checks (``MISSING_IMPLEMENTATION``,
    ``MISSING_FALLBACK``, ``INVALID_BATCH_WORKER_KEY``) run only when a registry is given, since
    without one lint cannot know what the runtime will have; built-in node names always count
    as implemented. With ``blueprints`` (id -> blueprint, as the runtime gets them), every
    subflow's ``blueprintId`` must be one of them (``INVALID_SUBFLOW_BLUEPRINT_ID``).
    """
    parsed = _parse(blueprint)
    issues = parsed.issues

    # Nodes: duplicates (the first occurrence wins for the graph passes), implementations and
    # fallbacks. ``graph_ids`` also holds nodes that failed validation, so the graph stays whole.
    graph_ids: dict[str, NodeDefinition | None] = {}
    for node_id, node in parsed.nodes:
        if node_id in graph_ids:
            issues.append(
                LintIssue(
                    "DUPLICATE_NODE_ID",
                    "error",
                    f"node id {node_id!r} is used by more than one node",
                    node_id=node_id,
                )
            )
            continue
        graph_ids[node_id] = node
    nodes = {node_id: node for node_id, node in graph_ids.items() if node is not None}

    if registry is not None:
        issues.extend(_implementation_issues(nodes.values(), registry))
    if blueprints is not None:
        issues.extend(_subflow_issues(nodes.values(), blueprints))

    graph_edges = _edge_issues(
        parsed.edges, graph_ids, issues, check_expressions=not parsed.expressions_checked
    )
    if graph_ids:
        # Nodes whose only incoming edges come from unknown nodes: flowcraft does not start
        # them, so they are orphans.
        fed_invalidly = {
            edge.target
            for _, edge in parsed.edges
            if edge.source not in graph_ids and edge.target in graph_ids
        }
        issues.extend(_graph_issues(parsed, graph_ids, nodes, graph_edges, fed_invalidly))

    if parsed.load_error is not None and not any(i.severity == "error" for i in issues):
        # Loading failed for a reason no pass above explains: keep the loader's own words.
        issues.extend(
            LintIssue("INVALID_BLUEPRINT", "error", problem)
            for problem in parsed.load_error.problems
        )
    return LintResult(issues)


#: Batch nodes whose ``workerUsesKey`` lint checks (flowcraft: every ``batch-*`` node).
_BATCH_NAMES = frozenset({BATCH_SCATTER, BATCH_GATHER, "BatchScatterNode", "BatchGatherNode"})


def _implementation_issues(
    nodes: Iterable[NodeDefinition], registry: Mapping[str, Any]
) -> list[LintIssue]:
    """Nodes whose ``uses`` or ``config.fallback`` the runtime would fail to resolve."""
    issues = []
    for node in nodes:
        if node.uses not in registry and node.uses not in BUILTIN_NODE_NAMES:
            issues.append(
                LintIssue(
                    "MISSING_IMPLEMENTATION",
                    "error",
                    f"node {node.id!r} uses {node.uses!r}, which is neither in the registry "
                    "nor a built-in",
                    node_id=node.id,
                )
            )
        worker = node.params.get("workerUsesKey")
        if (
            node.uses in _BATCH_NAMES
            and isinstance(worker, str)
            and worker not in registry
            and worker not in BUILTIN_NODE_NAMES
        ):
            issues.append(
                LintIssue(
                    "INVALID_BATCH_WORKER_KEY",
                    "error",
                    f"batch node {node.id!r} has workerUsesKey {worker!r}, which is not in the "
                    "registry",
                    node_id=node.id,
                )
            )
        fallback = node.config.fallback
        if fallback is not None and fallback not in registry and fallback not in BUILTIN_NODE_NAMES:
            issues.append(
                LintIssue(
                    "MISSING_FALLBACK",
                    "error",
                    f"node {node.id!r} has fallback {fallback!r}, which is neither in the "
                    "registry nor a built-in",
                    node_id=node.id,
                )
            )
    return issues


def _subflow_issues(
    nodes: Iterable[NodeDefinition], blueprints: Mapping[str, Any]
) -> list[LintIssue]:
    issues = []
    for node in nodes:
        if node.uses not in (SUBFLOW, "SubflowNode"):
            continue
        blueprint_id = node.params.get("blueprintId")
        if isinstance(blueprint_id, str) and blueprint_id not in blueprints:
            issues.append(
                LintIssue(
                    "INVALID_SUBFLOW_BLUEPRINT_ID",
                    "error",
                    f"subflow node {node.id!r} names blueprintId {blueprint_id!r}, which is not "
                    "among the blueprints given",
                    node_id=node.id,
                )
            )
    return issues


def _edge_issues(
    edges: Iterable[tuple[int, EdgeDefinition]],
    graph_ids: Mapping[str, Any],
    issues: list[LintIssue],
    *,
    check_expressions: bool = True,
) -> list[tuple[str, str]]:
    """Check references and expressions; return the edges that join known nodes."""
    graph_edges: list[tuple[str, str]] = []
    cache: dict[str, str | None] = {}
    for index, edge in edges:
        where = f"edges[{index}] ({edge.source!r} -> {edge.target!r})"
        joins_known = True
        for end, code in (("source", "INVALID_EDGE_SOURCE"), ("target", "INVALID_EDGE_TARGET")):
            ref = getattr(edge, end)
            if ref not in graph_ids:
                joins_known = False
                issues.append(
                    LintIssue(
                        code,
                        "error",
                        f"{where}: {end} {ref!r} is not a node of the blueprint",
                        edge_index=index,
                    )
                )
        for kind in ("condition", "transform") if check_expressions else ():
            source = getattr(edge, kind)
            if source is None:
                continue
            error = _compile_error(source, cache)
            if error is not None:
                issues.append(
                    LintIssue(
                        "INVALID_EXPRESSION",
                        "error",
                        f"{where}: {kind} {source!r} does not compile: {error}",
                        edge_index=index,
                    )
                )
        if joins_known:
            graph_edges.append((edge.source, edge.target))
    return graph_edges


#: Findings that refuse a start: a run of such a blueprint would fail partway (a missing
#: implementation, an expression that cannot compile, a graph the scheduler cannot run). A
#: cycle without a declared bound still runs: its conditions end it, and the drivers' bounds
#: stop it otherwise.
BLOCKING_CODES = frozenset(
    {
        "INVALID_BLUEPRINT",
        "INVALID_NODE",
        "INVALID_EDGE",
        "INVALID_EXPRESSION",
        "DUPLICATE_NODE_ID",
        "MISSING_IMPLEMENTATION",
        "MISSING_FALLBACK",
    }
)


class InvalidBlueprint(FlowcraftError, ValueError):
    """A blueprint whose lint finds errors (an unknown ``uses``, a bad expression, a broken
    graph): no run of it starts, and nothing is written. ``issues`` lists the findings."""

    def __init__(self, blueprint_id: str, issues: list[dict[str, Any]]) -> None:
        found = "; ".join(str(issue["message"]) for issue in issues)
        super().__init__(f"blueprint {blueprint_id!r} cannot run: {found}")
        self.blueprint_id = blueprint_id
        self.issues = issues


def check_runnable(blueprint: BlueprintInput, registry: Mapping[str, Any] | None) -> None:
    """Raise InvalidBlueprint when lint finds what would fail a run partway (both drivers call
    this once per blueprint, before anything runs or is written)."""
    result = lint_blueprint(blueprint, registry)
    blocking = [issue for issue in result.errors if issue.code in BLOCKING_CODES]
    if blocking:
        name = getattr(blueprint, "id", None) or (
            blueprint.get("id") if isinstance(blueprint, Mapping) else None
        )
        raise InvalidBlueprint(str(name), [issue.to_dict() for issue in blocking])
