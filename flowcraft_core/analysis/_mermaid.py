"""Mermaid diagrams of blueprints, coloured by node status."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..blueprint import (
    load_blueprint,
)
from ..scheduler import latest_by_node
from ..status import AWAITING, CANCELLED, COMPLETED, FAILED, RUNNING, SKIPPED
from ._types import BlueprintInput

_DIRECTIONS = frozenset({"TD", "TB", "BT", "LR", "RL"})

#: Mermaid class per node status; the class names are the status literals themselves.
_STATUS_STYLES: dict[str, str] = {
    COMPLETED: "fill:#d4edda,stroke:#28a745,color:#155724",
    FAILED: "fill:#f8d7da,stroke:#dc3545,color:#721c24",
    SKIPPED: "fill:#e2e3e5,stroke:#6c757d,color:#6c757d,stroke-dasharray:5 5",
    RUNNING: "fill:#fff3cd,stroke:#ffc107,color:#856404",
    AWAITING: "fill:#cce5ff,stroke:#007bff,color:#004085",
    CANCELLED: "fill:#343a40,stroke:#23272b,color:#ffffff",
    "pending": "fill:#ffffff,stroke:#adb5bd,color:#212529",
}

_ENTITIES = {
    "#": "#35;",
    '"': "#quot;",
    "<": "#lt;",
    ">": "#gt;",
    "&": "#amp;",
    "`": "#96;",
    "\n": " ",
    "\r": " ",
    "\t": " ",
}
_ESCAPE_TABLE = str.maketrans(_ENTITIES)


def _escape(text: str) -> str:
    """Make text safe inside a quoted Mermaid label (Mermaid's ``#name;`` entity codes).

    Quotes would end the label, ``<``/``>``/``&`` would be read as HTML and ``#`` starts an
    entity, so each becomes an entity; line breaks would end the statement, so they become spaces.
    """
    return text.translate(_ESCAPE_TABLE)


def diagram_statuses(
    node_statuses: Mapping[str, str], timeline: Iterable[Mapping[str, Any]] = ()
) -> dict[str, str]:
    """Node statuses to colour a run's diagram by, from its answer (``nodes`` and
    ``timeline``): a node that completed in any pass is drawn completed, even when a loop's
    exit pass skipped it last."""
    statuses = dict(node_statuses)
    for entry in timeline:
        key = str(entry.get("node", ""))
        node_id = key.rpartition("#")[0] or key
        if entry.get("status") == COMPLETED and statuses.get(node_id) == SKIPPED:
            statuses[node_id] = COMPLETED
    return statuses


def generate_mermaid(
    blueprint: BlueprintInput,
    node_statuses: Mapping[str, str] | None = None,
    *,
    direction: str = "TD",
) -> str:
    """A Mermaid ``flowchart`` of the blueprint, optionally coloured by node status.

    Node ids are replaced by ``n0``, ``n1``... (blueprint order) because real ids may hold spaces,
    quotes or Mermaid keywords (``end``); the real id and ``uses`` are shown in the label. Edge
    labels show the action, condition and transform. With ``node_statuses`` every node gets a
    status class (nodes without a recorded status are ``pending``); unknown statuses are ignored.
    A dict is loaded first, so a broken blueprint raises ``BlueprintError`` (lint it instead).
    """
    if direction not in _DIRECTIONS:
        raise ValueError(f"direction must be one of {sorted(_DIRECTIONS)}, not {direction!r}")
    model = load_blueprint(blueprint)
    mermaid_ids = {node.id: f"n{index}" for index, node in enumerate(model.nodes)}
    lines = [f"flowchart {direction}"]
    for node in model.nodes:
        label = f"{_escape(node.id)}<br/>uses: {_escape(node.uses)}"
        lines.append(f'    {mermaid_ids[node.id]}["{label}"]')
    for edge in model.edges:
        parts = []
        if edge.action is not None:
            parts.append(f"action: {edge.action}")
        if edge.condition is not None:
            parts.append(f"condition: {edge.condition}")
        if edge.transform is not None:
            parts.append(f"transform: {edge.transform}")
        source, target = mermaid_ids[edge.source], mermaid_ids[edge.target]
        if parts:
            label = _escape(" | ".join(parts))
            lines.append(f'    {source} -- "{label}" --> {target}')
        else:
            lines.append(f"    {source} --> {target}")
    if node_statuses is not None:
        statuses = latest_by_node(node_statuses)  # a loop member's latest pass
        for status, style in _STATUS_STYLES.items():
            lines.append(f"    classDef {status} {style}")
        for node in model.nodes:
            status = statuses.get(node.id, "pending")
            if status in _STATUS_STYLES:
                lines.append(f"    class {mermaid_ids[node.id]} {status}")
    return "\n".join(lines) + "\n"
