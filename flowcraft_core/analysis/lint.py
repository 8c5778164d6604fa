"""``lint_blueprint``: every problem with a blueprint as issues with stable codes.

It never raises on a bad blueprint: it is the tool a user reaches for precisely when loading
fails, so it also accepts the raw dict (or JSON text) and reports every problem it can find.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
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
    LOOP_CONTROLLER,
    LOOP_NAMES,
    SUBFLOW,
)
from ..context import cycle_entry_points
from ..errors import FlowcraftError
from .shape import _Topology, _topology
from .types import BlueprintInput, Severity


@dataclass(frozen=True)
class LintIssue:
    """One problem. ``code`` is stable (match on it); ``message`` is for humans and names the
    node or edge at fault."""

    code: str
    severity: Severity
    message: str
    node_id: str | None = None
    edge_index: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """camelCase form for JSON answers (unset locations omitted)."""
        result: dict[str, Any] = {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
        }
        if self.node_id is not None:
            result["nodeId"] = self.node_id
        if self.edge_index is not None:
            result["edgeIndex"] = self.edge_index
        return result


@dataclass(frozen=True)
class LintResult:
    """All issues found; the blueprint is valid when none of them is an error."""

    issues: list[LintIssue] = field(default_factory=list)

    @property
    def is_valid(self) -> bool:
        """True when no issue has severity ``error`` (warnings do not block a run)."""
        return not any(issue.severity == "error" for issue in self.issues)

    @property
    def errors(self) -> list[LintIssue]:
        """The issues that make the blueprint unusable."""
        return [issue for issue in self.issues if issue.severity == "error"]

    @property
    def warnings(self) -> list[LintIssue]:
        """The issues worth a look that do not stop a run."""
        return [issue for issue in self.issues if issue.severity == "warning"]

    @property
    def codes(self) -> list[str]:
        """Issue codes in report order (handy for asserting in tests)."""
        return [issue.code for issue in self.issues]

    def to_dict(self) -> dict[str, Any]:
        """camelCase form for JSON answers."""
        return {"isValid": self.is_valid, "issues": [issue.to_dict() for issue in self.issues]}


@dataclass
class _Parsed:
    """What lint could make of its input: the usable nodes and edges, plus problems found."""

    blueprint_id: str
    #: (id, definition) in blueprint order; the definition is None for a node that failed
    #: validation but has an id, so edges to it still count and no false reference error appears.
    nodes: list[tuple[str, NodeDefinition | None]]
    edges: list[tuple[int, EdgeDefinition]]
    metadata: Mapping[str, Any]
    issues: list[LintIssue]
    load_error: BlueprintError | None = None
    #: True when this lint call loaded the blueprint itself, so the loader already compiled every
    #: expression. A model handed in is re-checked: models are mutable after validation.
    expressions_checked: bool = False


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


def _graph_issues(
    parsed: _Parsed,
    graph_ids: Mapping[str, NodeDefinition | None],
    nodes: Mapping[str, NodeDefinition],
    graph_edges: list[tuple[str, str]],
    fed_invalidly: set[str] | frozenset[str] = frozenset(),
) -> list[LintIssue]:
    """Start nodes, reachability, orphans, joins and cycle bounds."""
    entry_points = cycle_entry_points(parsed.metadata)
    topology = _topology(list(graph_ids), graph_edges, entry_points)
    issues: list[LintIssue] = []
    if not topology.has_natural_start:
        issues.append(_no_start_issue(parsed.blueprint_id))
    issues.extend(_node_issues(graph_ids, nodes, topology, fed_invalidly))
    conditional = {
        (edge.source, edge.target) for _, edge in parsed.edges if edge.condition is not None
    }
    issues.extend(_cycle_issues(topology.cycles, nodes, graph_edges, conditional, entry_points))
    return issues


def _no_start_issue(blueprint_id: str) -> LintIssue:
    return LintIssue(
        "NO_START_NODE",
        "warning",
        f"blueprint {blueprint_id!r} has no start node: every node has an "
        "incoming edge, so each closed cycle is entered at a node listed in "
        "metadata.cycleEntryPoints, else at its first node",
    )


def _reachable(topology: _Topology) -> set[str]:
    """The nodes a run can reach from its start nodes (breadth-first, iterative)."""
    reached = set(topology.start_node_ids)
    queue = deque(topology.start_node_ids)
    while queue:
        for target in topology.successors[queue.popleft()]:
            if target not in reached:
                reached.add(target)
                queue.append(target)
    return reached


def _node_issues(
    graph_ids: Iterable[str],
    nodes: Mapping[str, NodeDefinition],
    topology: _Topology,
    fed_invalidly: set[str] | frozenset[str],
) -> list[LintIssue]:
    """Per node, in blueprint order: unreachable, orphaned, or a join with nothing to join."""
    reached = _reachable(topology)
    many = len(topology.node_ids) > 1
    issues: list[LintIssue] = []
    for node_id in graph_ids:
        incoming = topology.incoming[node_id]
        found = (
            None if node_id in reached else _unreachable_issue(node_id),
            _orphan_issue(
                node_id,
                incoming,
                topology.outgoing[node_id],
                fed_invalidly=node_id in fed_invalidly,
                many=many,
            ),
            _join_issue(node_id, nodes.get(node_id), incoming),
        )
        issues.extend(issue for issue in found if issue is not None)
    return issues


def _unreachable_issue(node_id: str) -> LintIssue:
    return LintIssue(
        "UNREACHABLE_NODE",
        "error",
        f"node {node_id!r} cannot be reached from any start node",
        node_id=node_id,
    )


def _orphan_issue(
    node_id: str, incoming: int, outgoing: int, *, fed_invalidly: bool, many: bool
) -> LintIssue | None:
    """An error when only invalid edges feed the node; a warning for a node with no edges at
    all among others (it runs on its own)."""
    if incoming == 0 and fed_invalidly:
        return LintIssue(
            "ORPHAN_NODE",
            "error",
            f"node {node_id!r} is reached only through invalid edges, so it is not "
            "reachable from any start node",
            node_id=node_id,
        )
    if many and incoming == 0 and outgoing == 0:
        return LintIssue(
            "ORPHAN_NODE",
            "warning",
            f"node {node_id!r} has no edges: it runs on its own as a separate start",
            node_id=node_id,
        )
    return None


def _join_issue(node_id: str, node: NodeDefinition | None, incoming: int) -> LintIssue | None:
    """A node that asks for an ``any`` join but has fewer than two inputs to join."""
    if (
        node is None
        or "join_strategy" not in node.config.model_fields_set
        or node.config.join_strategy != "any"
        or incoming >= 2
    ):
        return None
    return LintIssue(
        "JOIN_ON_SINGLE_INPUT",
        "warning",
        f"node {node_id!r} sets joinStrategy 'any' but has {incoming} incoming "
        "edge(s), so there is nothing to join",
        node_id=node_id,
    )


def _cycle_issues(
    cycles: Iterable[list[str]],
    nodes: Mapping[str, NodeDefinition],
    graph_edges: Iterable[tuple[str, str]],
    conditional: set[tuple[str, str]],
    entry_points: list[str],
) -> list[LintIssue]:
    """Each cycle without a loop node or ``maxIterations``: unbounded when a condition guards
    the edge back into its entry, else it runs once."""
    sources_of: dict[str, list[str]] = {}
    for source, target in graph_edges:
        sources_of.setdefault(target, []).append(source)
    issues: list[LintIssue] = []
    for cycle in cycles:
        if _is_controlled(cycle, nodes):
            continue
        members = set(cycle)
        entry = _cycle_entry(cycle, sources_of, entry_points)
        if any(s in members and t == entry for s, t in conditional):
            issues.append(_unbounded_cycle_issue(cycle))
        else:
            issues.append(_cycle_runs_once_issue(cycle))
    return issues


def _is_controlled(cycle: list[str], nodes: Mapping[str, NodeDefinition]) -> bool:
    """True when a member bounds the cycle (a loop node or ``maxIterations``)."""
    # A member that failed validation might carry the bound: do not guess there.
    return any(
        node_id not in nodes
        or nodes[node_id].uses in LOOP_NAMES
        or nodes[node_id].config.max_iterations is not None
        for node_id in cycle
    )


def _cycle_entry(
    cycle: list[str], sources_of: Mapping[str, list[str]], entry_points: list[str]
) -> str:
    """Where the scheduler enters the cycle: a member fed from outside (a listed entry point
    first), else a listed entry point, else its first member."""
    members = set(cycle)
    fed = [n for n in cycle if any(s not in members for s in sources_of.get(n, ()))]
    preferred = [n for n in entry_points if n in members]
    entry = next((n for n in preferred if n in fed), fed[0] if fed else None)
    if entry is None:
        entry = preferred[0] if preferred else cycle[0]
    return entry


def _cycle_path(cycle: list[str]) -> str:
    return " -> ".join(repr(node_id) for node_id in [*cycle, cycle[0]])


def _unbounded_cycle_issue(cycle: list[str]) -> LintIssue:
    return LintIssue(
        "UNBOUNDED_CYCLE",
        "warning",
        f"cycle {_cycle_path(cycle)} repeats while its conditions hold, with no bound but the "
        f"run's bound on node executions: add a {LOOP_CONTROLLER!r} node or set "
        "config.maxIterations on one of its nodes",
        node_id=cycle[0],
    )


def _cycle_runs_once_issue(cycle: list[str]) -> LintIssue:
    return LintIssue(
        "CYCLE_RUNS_ONCE",
        "warning",
        f"cycle {_cycle_path(cycle)} has no loop node: as in flowcraft, each of its nodes runs "
        f"once; add a {LOOP_CONTROLLER!r} node to repeat it",
        node_id=cycle[0],
    )


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
