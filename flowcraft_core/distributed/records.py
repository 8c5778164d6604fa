"""What the distributed driver knows about a run, as records read back from its items.

``RunHead`` is the run's small head item; ``NodeRecord`` one node instance's item. ``RunRecord``
is the whole run assembled from its items: the slow paths build it (the reconciler for a stalled
run, ``GET /runs/{runId}``, the check that only waiting nodes remain); no node's step needs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..builtins.map import MapSpec
from ..scheduler import (
    CompiledGraph,
    Scheduler,
    decision_key,
    latest_by_node,
    statuses_by_node,
)
from ..status import (
    AWAITING,
    CANCELLED,
    COMPLETED,
    FAILED,
    FINAL,
    RETRYING,
    RUNNING,
    SKIPPED,
    SLEEPING,
    WAITING,
)
from .layout import decode_indices, ranges_hold

FINAL_STATUSES = FINAL
#: Node records that are not settled: a commit may replace them.
PARKED = frozenset({AWAITING, WAITING, RETRYING, SLEEPING})
SETTLED = frozenset({COMPLETED, SKIPPED, FAILED})


def iso_utc(epoch: float) -> str:
    """``2026-12-04T22:41:33.120Z``: ISO 8601 in UTC, milliseconds (how answers show times)."""
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def child_run_id(parent_run_id: str, key: str, attempt: int = 1) -> str:
    """The run id of the child a subflow node starts (stable, so starting it is idempotent).

    The instance key keeps its ``#k`` loop suffix: node ids cannot contain ``#``, so no two
    instances share a child (URL-encode it as ``%23`` in API paths).
    """
    return f"{parent_run_id}--{key}" + (f"@{attempt}" if attempt > 1 else "")


@dataclass
class RunHead:
    run_id: str
    blueprint_id: str
    status: str = RUNNING
    #: Context key -> stored envelope (see ``payloads``); decoded on read.
    context: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0
    error: str | None = None
    parent: dict[str, Any] | None = None
    #: Instances parked as ``awaiting`` (a person or a webhook must resume them).
    waits: set[str] = field(default_factory=set)

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES


@dataclass(frozen=True, slots=True)
class PendingRetry:
    """A failed attempt's next one: its number, and when it may start."""

    attempt: int
    not_before: float

    def to_item(self) -> dict[str, float]:
        return {"attempt": self.attempt, "notBefore": self.not_before}

    @classmethod
    def from_item(cls, stored: Mapping[str, Any]) -> PendingRetry:
        return cls(int(stored["attempt"]), float(stored["notBefore"]))


@dataclass(frozen=True, slots=True)
class PendingResume:
    """A resume waiting to be applied to an awaiting instance: its result."""

    action: str | None
    #: The output's stored envelope (decoded when the resume is applied).
    output: Any


@dataclass
class NodeRecord:
    """One node instance (or one map item's result)."""

    status: str
    output: Any = None
    action: str | None = None
    attempts: int = 1
    error: str | None = None
    finished_at: float | None = None
    #: Edge decisions as stored: (taken ranges, not-taken ranges, pass), decoded on demand, so
    #: a worker that reads a 2,000-edge fan-out's source asks about its own edge in O(log n).
    stored_decisions: tuple[str, str, int] = ("", "", 0)
    #: A failed attempt's next one.
    retry: PendingRetry | None = None
    #: When a parked sleep ends.
    wake: float | None = None
    #: A resume waiting to be applied.
    resume: PendingResume | None = None
    #: The child run a waiting subflow node started.
    child: str | None = None
    #: The stored output envelope (views decode it only when asked).
    stored: Any = None

    @property
    def settled(self) -> bool:
        return self.status in SETTLED

    @property
    def decisions(self) -> dict[str, bool]:
        """Decision key -> taken, for every edge this instance decided."""
        taken, skipped, iteration = self.stored_decisions
        found = {decision_key(i, iteration): True for i in decode_indices(taken)}
        found.update({decision_key(i, iteration): False for i in decode_indices(skipped)})
        return found

    def took(self, edge_index: int) -> bool:
        """Whether this instance took edge ``edge_index`` (False when not, or not decided)."""
        return ranges_hold(self.stored_decisions[0], edge_index)


@dataclass(frozen=True)
class FanoutRecord:
    """A map's fan-out item (its chunks carry the same fields): how many items, their content
    digest, and the map's spec without its items."""

    count: int
    digest: str
    spec: dict[str, Any]

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> FanoutRecord:
        return cls(int(item["count"]), str(item["digest"]), dict(item["spec"]))

    def to_item(self) -> dict[str, Any]:
        return {"count": self.count, "digest": self.digest, "spec": self.spec}

    def map_spec(self) -> MapSpec:
        return MapSpec.from_dict({**self.spec, "items": []})


@dataclass
class FanoutProgress:
    """How far a map that fanned out has got: its items, its lanes, which items settled and
    the parked state of the others (by index)."""

    count: int
    concurrency: int
    done: set[int] = field(default_factory=set)
    parked: dict[int, NodeRecord] = field(default_factory=dict)

    def unfinished(self) -> list[int]:
        return [i for i in range(self.count) if i not in self.done]


@dataclass
class RunRecord:
    """A whole run, assembled from its items (slow paths only)."""

    run_id: str
    blueprint_id: str
    status: str = RUNNING
    context: dict[str, Any] = field(default_factory=dict)
    nodes: dict[str, NodeRecord] = field(default_factory=dict)
    #: Decisions no single node made (a loop's exits, decided when the loop ended).
    decisions: dict[str, bool] = field(default_factory=dict)
    #: ``any`` joins: the decision key of the arrival that fired each (first writer wins).
    fired_by: dict[str, str] = field(default_factory=dict)
    #: Map nodes fanned out as one job per item, by instance.
    fanouts: dict[str, FanoutProgress] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0
    error: str | None = None
    parent: dict[str, Any] | None = None

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def resumes(self) -> dict[str, PendingResume]:
        return {k: r.resume for k, r in self.nodes.items() if r.resume is not None}

    @property
    def retries(self) -> dict[str, PendingRetry]:
        return {k: r.retry for k, r in self.nodes.items() if r.retry is not None}

    @property
    def timers(self) -> dict[str, float]:
        return {k: r.wake for k, r in self.nodes.items() if r.wake is not None}

    def all_decisions(self) -> dict[str, bool]:
        decisions = dict(self.decisions)
        for record in self.nodes.values():
            if record.decisions:
                decisions.update(record.decisions)
        return decisions

    def scheduler(self, graph: CompiledGraph) -> Scheduler:
        settled = {k: r.status for k, r in self.nodes.items() if r.settled}
        outputs = {k: r.output for k, r in self.nodes.items() if r.status == COMPLETED}
        actions = {k: r.action for k, r in self.nodes.items() if r.status == COMPLETED}
        return Scheduler.restore(
            graph, settled, outputs, actions, self.all_decisions(), self.fired_by
        )

    def park_due(self, instance: str) -> float | None:
        """When a parked sleep or retry of this node (or map item) is due; None if not parked."""
        node = self.nodes.get(instance)
        if node is None:
            fan_key, _, index = instance.rpartition("[")
            fan = self.fanouts.get(fan_key)
            node = fan.parked.get(int(index.rstrip("]"))) if fan else None
        if node is None:
            return None
        due = node.wake
        if node.retry is not None:
            due = max(due or 0.0, node.retry.not_before)
        return due

    def awaiting_keys(self) -> list[str]:
        return [k for k, r in self.nodes.items() if r.status == AWAITING]

    def to_api(self) -> dict[str, Any]:
        """The public view (``GET /runs/{runId}``): node statuses and outputs of small runs."""
        body: dict[str, Any] = {
            "runId": self.run_id,
            "blueprintId": self.blueprint_id,
            "status": self.status,
            "context": self.context,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "nodes": statuses_by_node(
                {k: shown_status(r.status, self.status) for k, r in self.nodes.items()}
            ),
            "outputs": latest_by_node(
                {k: r.output for k, r in self.nodes.items() if r.status == COMPLETED}
            ),
            "timeline": [
                {
                    "node": key,
                    "status": shown_status(record.status, self.status),
                    "attempts": record.attempts,
                    "finishedAt": record.finished_at,
                    **({"nextAttemptAt": record.retry.not_before} if record.retry else {}),
                    **({"wakeAt": record.wake} if record.wake and not record.settled else {}),
                }
                for key, record in sorted(
                    self.nodes.items(), key=lambda item: item[1].finished_at or float("inf")
                )
            ],
        }
        if self.error:
            body["error"] = self.error
        return body


def shown_status(node_status: str, run_status: str) -> str:
    """A cancelled (or failed) run's parked nodes read ``cancelled``: they will not go on."""
    if node_status in PARKED and run_status in (CANCELLED, FAILED):
        return CANCELLED
    return node_status
