"""What a run hands back: its status, context, outputs, errors and timeline."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class NodeErrorInfo:
    node_id: str
    message: str
    attempt: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {"nodeId": self.node_id, "message": self.message, "attempt": self.attempt}


@dataclass(slots=True)
class NodeTiming:
    key: str
    status: str
    started: float
    finished: float
    attempts: int = 1


class Timeline(Sequence[NodeTiming]):
    """A run's node timings, in the order they settled; each ``NodeTiming`` is made when read
    (a 10,000-node run does not build 10,000 objects nobody looks at)."""

    __slots__ = ("_entries",)

    def __init__(self, entries: list[tuple[str, str, float, float, int]]) -> None:
        self._entries = entries

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [_timing(entry) for entry in self._entries[index]]
        return _timing(self._entries[index])

    def __iter__(self) -> Iterator[NodeTiming]:
        for entry in self._entries:
            yield _timing(entry)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence):
            return list(self) == list(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"Timeline({list(self)!r})"


def _timing(entry: tuple[str, str, float, float, int]) -> NodeTiming:
    key, status, started, finished, attempts = entry
    return NodeTiming(key, str(status), started, finished, attempts)  # a plain str, not Status


@dataclass
class WorkflowResult:
    """The outcome of ``FlowRuntime.run``: status, context, outputs by node id, errors."""

    run_id: str
    blueprint_id: str
    status: str
    context: dict[str, Any]
    outputs: dict[str, Any]
    errors: list[NodeErrorInfo] = field(default_factory=list)
    node_statuses: dict[str, str] = field(default_factory=dict)
    timeline: Sequence[NodeTiming] = field(default_factory=list)
    awaiting: list[str] = field(default_factory=list)
    #: node id -> output of each node the run is parked at (a webhook's ``{url, token,
    #: event}``, a parked subflow's child run).
    awaiting_outputs: dict[str, Any] = field(default_factory=dict)
    #: What ``resume`` needs: per-instance statuses, outputs, actions and edge decisions.
    state: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "runId": self.run_id,
            "blueprintId": self.blueprint_id,
            "status": self.status,
            "context": self.context,
            "outputs": self.outputs,
            "errors": [e.to_dict() for e in self.errors],
            "nodes": self.node_statuses,
            "awaiting": self.awaiting,
            "awaitingOutputs": self.awaiting_outputs,
        }
