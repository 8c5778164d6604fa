"""Reading settled records: latest outputs and statuses by node, and which instance a resume
addresses."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..status import SKIPPED
from ._graph import CompiledGraph, EdgeKind, instance_key, split_decision_key, split_key


def latest_by_node(values: Mapping[str, Any]) -> dict[str, Any]:
    """Instance key -> value, reduced to node id -> value of its latest iteration."""
    best: dict[str, tuple[int, Any]] = {}
    for key, value in values.items():
        node_id, iteration = split_key(key)
        seen = best.get(node_id)
        if seen is None or iteration >= seen[0]:
            best[node_id] = (iteration, value)
    return {node_id: value for node_id, (_, value) in best.items()}


def pick_waiting_key(waiting: list[str], node_id: str | None) -> str:
    """The waiting instance a resume addresses: an exact instance key (``ask#2``), else the
    latest waiting iteration of the node, else the only waiting instance. Both drivers resume
    through this; LookupError says why none fits."""
    if node_id is None:
        if len(waiting) != 1:
            raise LookupError(f"waiting at {', '.join(sorted(waiting))}; say which nodeId")
        return waiting[0]
    matches = [k for k in waiting if k == node_id] or [
        k for k in waiting if split_key(k)[0] == node_id
    ]
    if not matches:
        waiting_now = ", ".join(sorted(waiting)) or "none"
        raise LookupError(f"node {node_id!r} (not waiting; waiting: {waiting_now})")
    return max(matches, key=lambda k: split_key(k)[1])


def decision_source(graph: CompiledGraph, dkey: str, taken: bool) -> str | None:
    """The node instance whose settling made a decision; None for a loop's exit decided as not
    taken when the loop ended (no single node made that one)."""
    index, iteration = split_decision_key(dkey)
    edge = graph.edges[index]
    if edge.kind == EdgeKind.EXIT and not taken:
        return None
    return instance_key(edge.source, iteration)


def statuses_by_node(
    settled: Mapping[str, str], extra: Iterable[tuple[str, str]] = ()
) -> dict[str, str]:
    """node id -> status of its latest instance (for results and diagrams)."""
    best: dict[str, tuple[int, str]] = {}
    for key, status in [*settled.items(), *extra]:
        node_id, iteration = split_key(key)
        seen = best.get(node_id)
        if seen is None:
            best[node_id] = (iteration, status)
            continue
        # The latest pass wins, except that a loop's final, skipped pass does not hide the
        # passes that ran before it.
        later = iteration >= seen[0]
        if (later and not (status == SKIPPED and seen[1] != SKIPPED)) or (
            not later and seen[1] == SKIPPED and status != SKIPPED
        ):
            best[node_id] = (iteration, status)
    return {n: s for n, (_, s) in best.items()}
