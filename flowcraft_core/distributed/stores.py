"""Store and queue protocols of the distributed driver, with in-memory implementations.

The AWS implementations live in ``flowcraft_core.aws``; the in-memory ones here behave the same
(conditional writes, copies on read) so the protocol can be unit-tested in milliseconds.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import CommitRejected, StateTooLarge
from .job import Job
from .records import PARKED, RUNNING, WAITING, NodeRecord, RunRecord


class RunStore(Protocol):
    def create(self, record: RunRecord) -> bool:
        """Store a new run; False when the run id exists already."""
        ...

    def load(self, run_id: str) -> RunRecord | None: ...

    def commit(
        self,
        run_id: str,
        key: str,
        node: NodeRecord,
        *,
        context_set: dict[str, Any],
        context_delete: Iterable[str],
        now: float,
        fired_by: dict[str, str] | None = None,
        derived: dict[str, NodeRecord] | None = None,
        drop_fanout: bool = False,
        replace_attempt: int | None = None,
    ) -> RunRecord:
        """Commit a node once, while the run is running; raise CommitRejected.

        A completed node (with its decisions and context writes) may replace a parked record
        (``awaiting``/``waiting``) and clears the node's resume; parking a node only creates
        its record. ``fired_by`` claims ``any`` joins for this node's arrivals (first wins);
        ``derived`` are skipped nodes this commit implies (created only if absent);
        ``drop_fanout`` removes a completed map's items and item results;
        ``replace_attempt`` replaces a waiting record only if it is that attempt (a subflow
        node starting its next child).
        """
        ...

    def record_progress(
        self,
        run_id: str,
        *,
        nodes: dict[str, NodeRecord],
        decisions: dict[str, bool],
        now: float,
        timers: dict[str, float] | None = None,
        retries: dict[str, dict[str, float]] | None = None,
    ) -> RunRecord:
        """Idempotent facts derived from committed ones (skips, loop exits, sleep timers,
        pending retries); node records are only created, never replaced."""
        ...

    def transition(
        self,
        run_id: str,
        *,
        to: str,
        allowed_from: Iterable[str],
        now: float,
        error: str | None = None,
        resume: tuple[str, dict[str, Any]] | None = None,
        failed_node: tuple[str, NodeRecord] | None = None,
    ) -> RunRecord | None:
        """Change the run status if it is one of ``allowed_from``; None when it is not."""
        ...

    def record_fanout(self, run_id: str, key: str, spec: dict[str, Any], now: float) -> RunRecord:
        """Store a map node's fan-out once (the first writer's items win)."""
        ...

    def commit_item(self, run_id: str, key: str, index: int, output: Any, now: float) -> RunRecord:
        """Commit one map item's result at most once; raise CommitRejected."""
        ...


class StatusStore(Protocol):
    def started(self, run_id: str, blueprint_id: str, now: float) -> bool:
        """Record a new running run; False when the run id exists already."""
        ...

    def changed(
        self, run_id: str, status: str, now: float, *, error: str | None = None
    ) -> None: ...

    def heartbeat(self, run_id: str, at: float) -> None: ...

    def stale(self, before: float, limit: int) -> tuple[list[str], int]:
        """Active runs with no heartbeat since ``before``: (run ids, items read)."""
        ...

    def get(self, run_id: str) -> dict[str, Any] | None: ...


class JobQueue(Protocol):
    def send(self, jobs: Sequence[Job], delay_seconds: int = 0) -> None: ...


def _roundtrip(value: Any) -> Any:
    return json.loads(json.dumps(value))


@dataclass
class InMemoryRunStore:
    """A dict of run records with the same conditional-write rules as the DynamoDB store."""

    max_item_bytes: int = 400_000
    records: dict[str, RunRecord] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def create(self, record: RunRecord) -> bool:
        with self._lock:
            if record.run_id in self.records:
                return False
            self.records[record.run_id] = copy.deepcopy(record)
            return True

    def load(self, run_id: str) -> RunRecord | None:
        with self._lock:
            record = self.records.get(run_id)
            return copy.deepcopy(record) if record else None

    def _check_size(self, record: RunRecord) -> None:
        nodes = {k: v.to_item() for k, v in record.nodes.items()}
        size = len(json.dumps([record.context, nodes, record.fanouts]))
        if size > self.max_item_bytes:
            raise StateTooLarge(f"run state would be {size} bytes")

    def commit(
        self,
        run_id: str,
        key: str,
        node: NodeRecord,
        *,
        context_set: dict[str, Any],
        context_delete: Iterable[str],
        now: float,
        fired_by: dict[str, str] | None = None,
        derived: dict[str, NodeRecord] | None = None,
        drop_fanout: bool = False,
        replace_attempt: int | None = None,
    ) -> RunRecord:
        with self._lock:
            current = self.records.get(run_id)
            if current is None:
                raise CommitRejected("missing", None)
            existing = current.nodes.get(key)
            parking = node.status in PARKED
            if replace_attempt is not None:
                if (
                    existing is None
                    or existing.status != WAITING
                    or existing.attempts != replace_attempt
                    or current.status != RUNNING
                ):
                    raise CommitRejected("closed", copy.deepcopy(current))
            elif existing is not None and (parking or existing.status not in PARKED):
                reason = "parked" if existing.status in PARKED else "committed"
                raise CommitRejected(reason, copy.deepcopy(current))
            if current.status != RUNNING:
                raise CommitRejected("closed", copy.deepcopy(current))
            updated = copy.deepcopy(current)
            updated.nodes[key] = NodeRecord(**vars(node))
            updated.nodes[key].output = _roundtrip(node.output)
            for k, v in context_set.items():
                updated.context[k] = _roundtrip(v)
            for k in context_delete:
                updated.context.pop(k, None)
            for target, owner in (fired_by or {}).items():
                updated.fired_by.setdefault(target, owner)
            for k, rec in (derived or {}).items():
                updated.nodes.setdefault(k, copy.deepcopy(rec))
            if drop_fanout:
                updated.fanouts.pop(key, None)
            if not parking:
                updated.resumes.pop(key, None)
                updated.retries.pop(key, None)
            updated.updated_at = now
            self._check_size(updated)
            self.records[run_id] = updated
            return copy.deepcopy(updated)

    def record_progress(
        self,
        run_id: str,
        *,
        nodes: dict[str, NodeRecord],
        decisions: dict[str, bool],
        now: float,
        timers: dict[str, float] | None = None,
        retries: dict[str, dict[str, float]] | None = None,
    ) -> RunRecord:
        with self._lock:
            current = self.records[run_id]
            if current.status != RUNNING:
                raise CommitRejected("closed", copy.deepcopy(current))
            for k, rec in nodes.items():
                current.nodes.setdefault(k, copy.deepcopy(rec))
            current.decisions.update(decisions)
            for k, at in (timers or {}).items():
                current.timers.setdefault(k, at)
            for k, pending in (retries or {}).items():
                current.retries[k] = dict(pending)
            current.updated_at = now
            return copy.deepcopy(current)

    def transition(
        self,
        run_id: str,
        *,
        to: str,
        allowed_from: Iterable[str],
        now: float,
        error: str | None = None,
        resume: tuple[str, dict[str, Any]] | None = None,
        failed_node: tuple[str, NodeRecord] | None = None,
    ) -> RunRecord | None:
        with self._lock:
            current = self.records.get(run_id)
            if current is None or current.status not in set(allowed_from):
                return None
            if failed_node is not None:
                existing = current.nodes.get(failed_node[0])
                if existing is not None and existing.status not in PARKED:
                    return None  # the node was committed meanwhile: the run goes on
                current.nodes[failed_node[0]] = failed_node[1]
            if resume is not None:
                key, payload = resume
                node = current.nodes.get(key)
                if node is None or node.status != "awaiting" or key in current.resumes:
                    return None
                current.resumes[key] = _roundtrip(payload)
            current.status = to
            current.updated_at = now
            if error is not None:
                current.error = error
            return copy.deepcopy(current)

    def record_fanout(self, run_id: str, key: str, spec: dict[str, Any], now: float) -> RunRecord:
        with self._lock:
            current = self.records[run_id]
            if current.status != RUNNING:
                raise CommitRejected("closed", copy.deepcopy(current))
            if key not in current.fanouts:
                current.fanouts[key] = {**_roundtrip(spec), "results": {}}
            current.updated_at = now
            self._check_size(current)
            return copy.deepcopy(current)

    def commit_item(self, run_id: str, key: str, index: int, output: Any, now: float) -> RunRecord:
        with self._lock:
            current = self.records[run_id]
            fan = current.fanouts.get(key)
            if fan is None or str(index) in fan["results"] or key in current.nodes:
                raise CommitRejected("committed", copy.deepcopy(current))
            if current.status != RUNNING:
                raise CommitRejected("closed", copy.deepcopy(current))
            fan["results"][str(index)] = _roundtrip(output)
            current.retries.pop(f"{key}[{index}]", None)
            current.updated_at = now
            self._check_size(current)
            return copy.deepcopy(current)


@dataclass
class InMemoryStatusStore:
    items: dict[str, dict[str, Any]] = field(default_factory=dict)

    def started(self, run_id: str, blueprint_id: str, now: float) -> bool:
        if run_id in self.items:
            return False
        self.items[run_id] = {
            "runId": run_id,
            "blueprintId": blueprint_id,
            "status": RUNNING,
            "createdAt": now,
            "updatedAt": now,
            "heartbeatAt": now,
            "active": True,
        }
        return True

    def changed(self, run_id: str, status: str, now: float, *, error: str | None = None) -> None:
        item = self.items.setdefault(run_id, {"runId": run_id})
        item.update(status=status, updatedAt=now, heartbeatAt=now, active=status == RUNNING)
        if error:
            item["error"] = error

    def heartbeat(self, run_id: str, at: float) -> None:
        if run_id in self.items:
            self.items[run_id]["heartbeatAt"] = at

    def stale(self, before: float, limit: int) -> tuple[list[str], int]:
        found = [k for k, v in self.items.items() if v.get("active") and v["heartbeatAt"] < before][
            :limit
        ]
        return found, len(found)

    def get(self, run_id: str) -> dict[str, Any] | None:
        item = self.items.get(run_id)
        return dict(item) if item else None


@dataclass
class InMemoryJobQueue:
    """A list of (job, delay) pairs; tests deliver them in any order, as often as they like."""

    sent: list[tuple[Job, int]] = field(default_factory=list)

    def send(self, jobs: Sequence[Job], delay_seconds: int = 0) -> None:
        self.sent.extend((job, delay_seconds) for job in jobs)

    def drain(self) -> list[Job]:
        jobs = [job for job, _ in self.sent]
        self.sent.clear()
        return jobs
