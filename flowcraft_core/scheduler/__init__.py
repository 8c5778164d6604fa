"""The one place that decides what follows a node: edges, joins, skips, loops, completion.

Both drivers use it: the in-memory runtime keeps one ``Scheduler`` per run; the distributed
worker decides a node's edges with ``choose_edges``, builds its input with
``Scheduler.for_input`` and rebuilds a whole scheduler (``Scheduler.restore``) only on its slow
paths. The rules: docs/design.md, section 2.
"""

from ._edges import (
    READY,
    SKIP,
    WAIT,
    apply_transform,
    choose_edges,
    edge_failure_message,
    failing_edge,
    join_verdict,
)
from ._graph import (
    CompiledEdge,
    CompiledGraph,
    EdgeKind,
    ExecutionLimitError,
    GraphError,
    Loop,
    LoopLimitError,
    decision_key,
    instance_key,
    split_decision_key,
    split_key,
    target_iteration,
)
from ._records import decision_source, latest_by_node, pick_waiting_key, statuses_by_node
from ._scheduler import Scheduler, Settlement

__all__ = [
    "READY",
    "SKIP",
    "WAIT",
    "CompiledEdge",
    "CompiledGraph",
    "EdgeKind",
    "ExecutionLimitError",
    "GraphError",
    "Loop",
    "LoopLimitError",
    "Scheduler",
    "Settlement",
    "apply_transform",
    "choose_edges",
    "decision_key",
    "decision_source",
    "edge_failure_message",
    "failing_edge",
    "instance_key",
    "join_verdict",
    "latest_by_node",
    "pick_waiting_key",
    "split_decision_key",
    "split_key",
    "statuses_by_node",
    "target_iteration",
]
