"""The run record: everything the distributed driver knows about one run, in one item.

Keeping context, per-node results and edge decisions in a single item lets a node commit with a
single conditional write: its output, its context writes and its edge decisions land together
or not at all, and the write's condition makes the commit happen at most once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..scheduler import AWAITING, CompiledGraph, Scheduler, latest_by_node

RUNNING = "running"
#: A node whose child run (subflow) is under way; it is neither settled nor awaiting a person.
WAITING = "waiting"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
FINAL_STATUSES = frozenset({COMPLETED, FAILED, CANCELLED})
PARKED = frozenset({AWAITING, WAITING})


def child_run_id(parent_run_id: str, key: str, attempt: int = 1) -> str:
    """The run id of the child a subflow node starts (stable, so starting it is idempotent).

    The instance key keeps its ``#k`` loop suffix: node ids cannot contain ``#``, so no two
    instances share a child (URL-encode it as ``%23`` in API paths).
    """
    return f"{parent_run_id}--{key}" + (f"@{attempt}" if attempt > 1 else "")


@dataclass
class NodeRecord:
    """One committed node instance (short attribute names keep the item small)."""

    status: str
    output: Any = None
    action: str | None = None
    attempts: int = 1
    error: str | None = None
    finished_at: float | None = None
    #: The edge decisions this instance made when it settled. Kept with the node, so one write
    #: (one update clause) commits a node with any number of outgoing edges.
    decisions: dict[str, bool] = field(default_factory=dict)

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {"s": self.status, "n": self.attempts}
        if self.decisions:
            item["d"] = self.decisions
        if self.output is not None:
            item["o"] = self.output
        if self.action is not None:
            item["a"] = self.action
        if self.error is not None:
            item["e"] = self.error
        if self.finished_at is not None:
            item["t"] = self.finished_at
        return item

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> NodeRecord:
        return cls(
            status=item["s"],
            output=item.get("o"),
            action=item.get("a"),
            attempts=int(item.get("n", 1)),
            error=item.get("e"),
            finished_at=item.get("t"),
            decisions={k: bool(v) for k, v in (item.get("d") or {}).items()},
        )


@dataclass
class RunRecord:
    run_id: str
    blueprint_id: str
    status: str = RUNNING
    context: dict[str, Any] = field(default_factory=dict)
    nodes: dict[str, NodeRecord] = field(default_factory=dict)
    #: Decisions no single node made (a loop's exits, decided when the loop ended).
    decisions: dict[str, bool] = field(default_factory=dict)
    #: ``any`` joins: the decision key of the arrival that fired each (first writer wins).
    fired_by: dict[str, str] = field(default_factory=dict)
    #: Failed attempts waiting on the queue for their retry: attempt and when it is due.
    retries: dict[str, dict[str, float]] = field(default_factory=dict)
    resumes: dict[str, dict[str, Any]] = field(default_factory=dict)
    timers: dict[str, float] = field(default_factory=dict)
    #: Map nodes fanned out as one job per item: spec, items and results by index.
    fanouts: dict[str, dict[str, Any]] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0
    error: str | None = None
    parent: dict[str, Any] | None = None

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES

    def all_decisions(self) -> dict[str, bool]:
        decisions = dict(self.decisions)
        for record in self.nodes.values():
            if record.decisions:
                decisions.update(record.decisions)
        return decisions

    def scheduler(self, graph: CompiledGraph) -> Scheduler:
        settled = {k: r.status for k, r in self.nodes.items() if r.status not in PARKED}
        outputs = {k: r.output for k, r in self.nodes.items() if r.status == "completed"}
        actions = {k: r.action for k, r in self.nodes.items() if r.status == "completed"}
        return Scheduler.restore(
            graph, settled, outputs, actions, self.all_decisions(), self.fired_by
        )

    def park_due(self, park_key: str) -> float | None:
        """When a parked sleep or retry of this node (or map item) is due; None if not parked."""
        due = self.timers.get(park_key)
        retry = self.retries.get(park_key)
        if retry is not None:
            due = max(due or 0.0, float(retry["notBefore"]))
        return due

    def child_of(self, key: str) -> str | None:
        """The child run a waiting subflow node started (its latest attempt)."""
        node = self.nodes.get(key)
        if node is None or node.status != WAITING or not isinstance(node.output, dict):
            return None
        child = node.output.get("childRunId")
        return str(child) if child else None

    def awaiting_keys(self) -> list[str]:
        return [k for k, r in self.nodes.items() if r.status == AWAITING]

    def to_api(self) -> dict[str, Any]:
        """The public view (``GET /runs/{runId}``)."""
        from ..scheduler import statuses_by_node

        body: dict[str, Any] = {
            "runId": self.run_id,
            "blueprintId": self.blueprint_id,
            "status": self.status,
            "context": self.context,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "nodes": statuses_by_node({k: r.status for k, r in self.nodes.items()}),
            "outputs": latest_by_node(
                {k: r.output for k, r in self.nodes.items() if r.status == COMPLETED}
            ),
            "timeline": [
                {
                    "node": key,
                    "status": record.status,
                    "attempts": record.attempts,
                    "finishedAt": record.finished_at,
                }
                for key, record in sorted(
                    self.nodes.items(), key=lambda item: item[1].finished_at or float("inf")
                )
            ],
        }
        if self.error:
            body["error"] = self.error
        return body
