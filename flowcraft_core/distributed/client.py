"""Start, inspect, resume and cancel distributed runs (used by the API and by scripts).

Every write is conditional, so a repeated call (a retried HTTP request, a duplicate start with
the same run id) answers the same way and never forks a run.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Mapping
from typing import Any

from ..blueprint import WorkflowBlueprint, load_blueprint
from ..engine import Clock, SystemClock
from ..scheduler import AWAITING, CompiledGraph, pick_waiting_key
from .errors import RunConflict, RunNotFound, UnknownBlueprint
from .job import Job
from .records import CANCELLED, FINAL_STATUSES, RUNNING, WAITING, RunRecord, child_run_id
from .storable import check_storable
from .stores import JobQueue, RunStore, StatusStore


class WorkflowClient:
    def __init__(
        self,
        *,
        runs: RunStore,
        statuses: StatusStore,
        queue: JobQueue,
        blueprints: Mapping[str, WorkflowBlueprint | Mapping[str, Any]],
        clock: Clock | None = None,
    ) -> None:
        self.runs = runs
        self.statuses = statuses
        self.queue = queue
        self.blueprints = {k: load_blueprint(v) for k, v in blueprints.items()}
        self.clock: Clock = clock or SystemClock()
        self._graphs: dict[str, CompiledGraph] = {}

    def graph(self, blueprint_id: str) -> CompiledGraph:
        if blueprint_id not in self.blueprints:
            raise UnknownBlueprint(blueprint_id, list(self.blueprints))
        graph = self._graphs.get(blueprint_id)
        if graph is None:
            graph = self._graphs[blueprint_id] = CompiledGraph(self.blueprints[blueprint_id])
        return graph

    def start(
        self,
        blueprint_id: str,
        context: Mapping[str, Any] | None = None,
        *,
        run_id: str | None = None,
        parent: dict[str, Any] | None = None,
    ) -> tuple[str, str]:
        """Start a run (idempotent for a given ``run_id``): returns (run id, status)."""
        graph = self.graph(blueprint_id)
        check_storable(dict(context or {}), "context")
        run_id = run_id or str(uuid.uuid4())
        now = self.clock.now()
        # The status row goes first: if we die before the record or the first jobs exist, the
        # reconciler still finds this run and finishes (or fails) the start.
        if not self.statuses.started(run_id, blueprint_id, now):
            existing = self.runs.load(run_id)
            if existing is not None:
                if existing.blueprint_id != blueprint_id:
                    raise RunConflict(run_id, existing.status, f"start it as {blueprint_id!r}")
                return run_id, existing.status
            # An earlier start died before the record: make its status row active again (the
            # reconciler may have marked it failed meanwhile) and finish the start.
            self.statuses.changed(run_id, RUNNING, now)
        record = RunRecord(
            run_id=run_id,
            blueprint_id=blueprint_id,
            context=dict(context or {}),
            created_at=now,
            updated_at=now,
            parent=parent,
        )
        if not self.runs.create(record):
            existing = self.runs.load(run_id)
            return run_id, existing.status if existing else RUNNING
        jobs = [Job(run_id=run_id, blueprint_id=blueprint_id, node_id=n) for n in graph.start_nodes]
        self.queue.send(jobs)
        return run_id, RUNNING

    def get(self, run_id: str) -> RunRecord:
        record = self.runs.load(run_id)
        if record is None:
            raise RunNotFound(run_id)
        return record

    def resume(
        self,
        run_id: str,
        *,
        node_id: str | None = None,
        action: str | None = None,
        output: Any = None,
    ) -> str:
        """Resume an awaiting run at ``node_id`` (or its only waiting node); returns the key."""
        check_storable(output, "output")
        record = self.get(run_id)
        if record.status != AWAITING:
            raise RunConflict(run_id, record.status, "resume (it is not awaiting)")
        key = pick_waiting(record, node_id)
        now = self.clock.now()
        # The status row first: if we die after the record changes, the run is back in the
        # reconciler's index, which then sends the resumed node.
        self.statuses.changed(run_id, RUNNING, now)
        updated = self.runs.transition(
            run_id,
            to=RUNNING,
            allowed_from=[AWAITING],
            now=now,
            resume=(key, {"action": action, "output": output}),
        )
        if updated is None:
            current = self.get(run_id)
            self.statuses.changed(run_id, current.status, now, error=current.error)
            raise RunConflict(run_id, current.status, "resume (it changed meanwhile)")
        # Again after: a worker parking the run may have written "awaiting" in between.
        self.statuses.changed(run_id, RUNNING, self.clock.now())
        self.queue.send(
            [Job(run_id=run_id, blueprint_id=record.blueprint_id, node_id=key, cause="resume")]
        )
        return key

    def cancel(self, run_id: str) -> None:
        record = self.get(run_id)
        if record.status == CANCELLED:
            self._cancel_children(record)  # a repeated cancel still reaches the children
        if record.status in FINAL_STATUSES:
            raise RunConflict(run_id, record.status, "cancel (it has finished)")
        now = self.clock.now()
        updated = self.runs.transition(
            run_id, to=CANCELLED, allowed_from=[RUNNING, AWAITING], now=now, error="cancelled"
        )
        if updated is None:
            current = self.get(run_id)
            raise RunConflict(run_id, current.status, "cancel (it has finished)")
        self.statuses.changed(run_id, CANCELLED, now)
        notify_parent(self.queue, updated)
        self._cancel_children(updated)

    def _cancel_children(self, record: RunRecord) -> None:
        for key, node in record.nodes.items():
            if node.status == WAITING:
                child_id = record.child_of(key) or child_run_id(record.run_id, key)
                child = self.runs.load(child_id)
                if child is not None and not child.final:
                    # The child may finish meanwhile.
                    with contextlib.suppress(RunConflict, RunNotFound):
                        self.cancel(child.run_id)


def pick_waiting(record: RunRecord, node_id: str | None) -> str:
    waiting = [k for k in record.awaiting_keys() if k not in record.resumes]
    try:
        return pick_waiting_key(waiting, node_id)
    except LookupError as exc:
        raise RunConflict(record.run_id, record.status, f"resume {exc.args[0]}") from None


def notify_parent(queue: JobQueue, record: RunRecord) -> None:
    """A finished child run wakes its parent's subflow node (which then reads the child)."""
    if record.parent:
        queue.send(
            [
                Job(
                    run_id=record.parent["runId"],
                    blueprint_id=record.parent["blueprintId"],
                    node_id=record.parent["node"],
                    cause=f"child {record.run_id} ended",
                )
            ]
        )
