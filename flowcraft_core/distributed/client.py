"""Start, inspect, resume and cancel distributed runs (used by the API and by scripts).

Every write is conditional, so a repeated call (a retried HTTP request, a duplicate start with
the same run id) answers the same way and never forks a run.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Mapping
from typing import Any

from ..blueprint import WorkflowBlueprint, load_blueprint
from ..builtins.map import map_item_instance
from ..engine import Clock, SystemClock
from ..scheduler import CompiledGraph, pick_waiting_key, split_key
from ..status import AWAITING, COMPLETED, FAILED, RETRYING
from .errors import (
    InvalidResume,
    RunConflict,
    RunNotFound,
    UnknownBlueprint,
    UnknownWebhook,
    WebhookRefused,
)
from .items import Cond, ConditionFailed, ItemStore, Update
from .job import Job
from .layout import head_key, node_key
from .payloads import ValueCodec
from .plan import Plan
from .records import (
    CANCELLED,
    FINAL_STATUSES,
    RUNNING,
    PendingRetry,
    RunHead,
    RunRecord,
    child_run_id,
)
from .state import Retention, RunItems
from .storable import check_storable
from .stores import JobQueue, StatusStore

_RESERVED = re.compile(r"#(?![0-9])")


class WorkflowClient:
    def __init__(
        self,
        *,
        items: ItemStore | None = None,
        runs: RunItems | None = None,
        statuses: StatusStore,
        queue: JobQueue,
        blueprints: Mapping[str, WorkflowBlueprint | Mapping[str, Any]],
        clock: Clock | None = None,
        codec: ValueCodec | None = None,
        retention: Retention | None = None,
        registry: Mapping[str, Any] | None = None,
    ) -> None:
        if runs is None:
            if items is None:
                raise TypeError("WorkflowClient needs items (an ItemStore) or runs (RunItems)")
            runs = RunItems(items, codec or ValueCodec(), retention)
        self.runs = runs
        self.codec = runs.codec
        self.statuses = statuses
        self.queue = queue
        self.blueprints = {k: load_blueprint(v) for k, v in blueprints.items()}
        self.clock: Clock = clock or SystemClock()
        self._plans: dict[str, Plan] = {}
        #: What the workers run; with it, a start first checks every ``uses`` exists.
        self.registry = registry
        self._checked: set[str] = set()

    def plan(self, blueprint_id: str) -> Plan:
        if blueprint_id not in self.blueprints:
            raise UnknownBlueprint(blueprint_id, list(self.blueprints))
        plan = self._plans.get(blueprint_id)
        if plan is None:
            plan = self._plans[blueprint_id] = Plan.of(CompiledGraph(self.blueprints[blueprint_id]))
        return plan

    def graph(self, blueprint_id: str) -> CompiledGraph:
        return self.plan(blueprint_id).graph

    def start(
        self,
        blueprint_id: str,
        context: Mapping[str, Any] | None = None,
        *,
        run_id: str | None = None,
        parent: dict[str, Any] | None = None,
    ) -> tuple[str, str]:
        """Start a run (idempotent for a given ``run_id``): returns (run id, status).

        The blueprint is linted first (once per blueprint): a start of a blueprint that cannot
        run is refused with its findings before anything is written.
        """
        graph = self.graph(blueprint_id)
        self.check(blueprint_id)
        check_storable(dict(context or {}), "context")
        if run_id is not None and _RESERVED.search(run_id):
            # A run's items are keyed "<run id>#<kind>#...": an id with "#" and a letter could
            # name another run's items ("#" and digits, as in a loop pass's child, cannot).
            raise ValueError(f"run id {run_id!r} may not contain '#' followed by a letter")
        run_id = run_id or str(uuid.uuid4())
        now = self.clock.now()
        # The status row goes first: if we die before the head or the first jobs exist, the
        # reconciler still finds this run and finishes (or fails) the start.
        if not self.statuses.started(run_id, blueprint_id, now):
            existing = self.runs.head(run_id)
            if existing is not None:
                if existing.blueprint_id != blueprint_id:
                    raise RunConflict(run_id, existing.status, f"start it as {blueprint_id!r}")
                return run_id, existing.status
            # An earlier start died before the head: make its status row active again (the
            # reconciler may have marked it failed meanwhile) and finish the start.
            self.statuses.changed(run_id, RUNNING, now)
        head = RunHead(
            run_id=run_id,
            blueprint_id=blueprint_id,
            created_at=now,
            updated_at=now,
            parent=parent,
        )
        if not self.runs.create(head, dict(context or {}), now):
            existing = self.runs.head(run_id)
            return run_id, existing.status if existing else RUNNING
        jobs = [Job(run_id=run_id, blueprint_id=blueprint_id, node_id=n) for n in graph.start_nodes]
        if not jobs:
            # An empty blueprint has nothing to run: it is complete as soon as it starts.
            self.runs.transition(run_id, to=COMPLETED, allowed_from=[RUNNING], now=now)
            self.statuses.changed(run_id, COMPLETED, now)
            return run_id, COMPLETED
        self.queue.send(jobs)
        return run_id, RUNNING

    def check(self, blueprint_id: str) -> None:
        """Lint a blueprint once; raise InvalidBlueprint naming every error found."""
        if blueprint_id in self._checked:
            return
        from ..analysis import check_runnable
        from ..builtins import default_registry

        registry = None if self.registry is None else {**default_registry(), **self.registry}
        check_runnable(self.blueprints[blueprint_id], registry)
        self._checked.add(blueprint_id)

    def head(self, run_id: str) -> RunHead:
        head = self.runs.head(run_id)
        if head is None:
            raise RunNotFound(run_id)
        return head

    def get(self, run_id: str, *, outputs: bool = True) -> RunRecord:
        """The whole run (its node records read by blueprint): for views, not hot paths.
        ``outputs=False`` leaves node outputs undecoded (no payload-bucket reads)."""
        from .view import load_run

        head = self.head(run_id)
        record = load_run(self.runs, self.plan(head.blueprint_id), run_id, outputs=outputs)
        if record is None:
            raise RunNotFound(run_id)
        return record

    def view(self, run_id: str) -> dict[str, Any]:
        """``GET /runs/{runId}``: status, context and a summary (bounded for any run size)."""
        from .view import run_view

        head = self.head(run_id)
        body = run_view(self.runs, self.plan(head.blueprint_id), run_id)
        if body is None:
            raise RunNotFound(run_id)
        return body

    def nodes(
        self, run_id: str, *, limit: int = 50, next_token: str | None = None
    ) -> dict[str, Any]:
        """``GET /runs/{runId}/nodes``: a page of node results, in blueprint order."""
        from .view import node_page

        head = self.head(run_id)
        return node_page(self.runs, self.plan(head.blueprint_id), head, limit, next_token)

    def webhook(
        self, run_id: str, node_id: str, token: str | None, body: Any, action: str | None = None
    ) -> str:
        """A webhook node's endpoint was called: with its token, the body becomes the node's
        output and the run goes on, as a resume would (also while other branches still run).
        Raises UnknownWebhook (no such waiting webhook) or WebhookRefused (wrong token)."""
        from ..builtins.webhook import token_matches

        check_storable(body, "body")
        head = self.runs.head(run_id)
        if head is None:
            raise UnknownWebhook(run_id, node_id)
        records = self.runs.nodes(run_id, [node_id])
        record = records.get(node_id)
        if record is None or record.status != AWAITING or record.stored is None:
            raise UnknownWebhook(run_id, node_id)
        if not token_matches(self.codec.decode(record.stored), token):
            raise WebhookRefused(run_id, node_id)
        return self.resume(run_id, node_id=node_id, action=action, output=body, running=True)

    def resume(
        self,
        run_id: str,
        *,
        node_id: str | None = None,
        action: str | None = None,
        output: Any = None,
        running: bool = False,
    ) -> str:
        """Resume an awaiting run at ``node_id`` (or its only waiting node); returns the key.
        ``running`` also accepts a run whose other branches are still under way."""
        check_storable(output, "output")
        head = self.head(run_id)
        allowed = (AWAITING, RUNNING) if running else (AWAITING,)
        if head.status not in allowed:
            raise RunConflict(run_id, head.status, "resume (it is not awaiting)")
        outer, _, inner = (node_id or "").partition("/")
        key = pick_waiting(head, outer or None)
        waiting = self.runs.nodes(run_id, [key]).get(key)
        if waiting is not None and waiting.child:
            # A subflow node waits because its child does: the resume goes to the child.
            return self._resume_through_child(
                head, key, waiting.child, inner or None, action, output, allowed
            )
        check_routes(self.plan(head.blueprint_id), run_id, key, action)
        now = self.clock.now()
        # The status row first: if we die after the head changes, the run is back in the
        # reconciler's index, which then sends the resumed node.
        self.statuses.changed(run_id, RUNNING, now)
        resumed = self.runs.resume(
            run_id, key, action=action, output=output, allowed=allowed, now=now
        )
        if not resumed:
            current = self.head(run_id)
            self.statuses.changed(run_id, current.status, now, error=current.error)
            raise RunConflict(run_id, current.status, "resume (it changed meanwhile)")
        # Again after: a worker parking the run may have written "awaiting" in between.
        self.statuses.changed(run_id, RUNNING, self.clock.now())
        self.queue.send(
            [Job(run_id=run_id, blueprint_id=head.blueprint_id, node_id=key, cause="resume")]
        )
        return key

    def _resume_through_child(
        self,
        head: RunHead,
        key: str,
        child_id: str,
        inner: str | None,
        action: str | None,
        output: Any,
        allowed: tuple[str, ...],
    ) -> str:
        """Check the child's resume first (nothing is written if it would be refused), then put
        the parent node back to waiting on its child and resume the child."""
        child = self.head(child_id)
        if child.status != AWAITING:
            raise RunConflict(child_id, child.status, "resume (it is not awaiting)")
        child_key = pick_waiting(child, inner)
        inner_record = self.runs.nodes(child_id, [child_key]).get(child_key)
        if inner_record is None or not inner_record.child:
            check_routes(self.plan(child.blueprint_id), child_id, child_key, action)
        now = self.clock.now()
        self.statuses.changed(head.run_id, RUNNING, now)
        if not self.runs.resume_through_child(head.run_id, key, allowed=allowed, now=now):
            current = self.head(head.run_id)
            self.statuses.changed(head.run_id, current.status, now, error=current.error)
            raise RunConflict(head.run_id, current.status, "resume (it changed meanwhile)")
        self.resume(child_id, node_id=inner, action=action, output=output)
        return key

    def redrive(self, run_id: str) -> list[str]:
        """Continue a failed run from the nodes that failed, keeping every committed result
        (fresh attempts for the failed nodes and their unfinished map items). Returns the
        instances sent again."""
        from .view import load_run

        head = self.head(run_id)
        if head.status != FAILED:
            raise RunConflict(run_id, head.status, "redrive (only a failed run can be redriven)")
        plan = self.plan(head.blueprint_id)
        record = load_run(self.runs, plan, run_id, outputs=False, fanouts=True)
        if record is None:
            raise RunNotFound(run_id)
        now = self.clock.now()
        # The status row first: if we die after the head changes, the reconciler sees the run.
        self.statuses.changed(run_id, RUNNING, now)
        failed = [k for k, n in record.nodes.items() if n.status == FAILED]
        fresh = PendingRetry(attempt=1, not_before=now)
        for key in failed:
            node = record.nodes[key]
            # A subflow node starts a new child run (the failed one stays for reading).
            child = child_run_id(run_id, key, node.attempts + 1) if node.child else None
            self._reopen(run_id, key, fresh, now, child)
            fan = record.fanouts.get(key)
            for index, item in (fan.parked if fan is not None else {}).items():
                if item.status in (FAILED, RETRYING):
                    self._reopen(run_id, map_item_instance(key, index), fresh, now)
        try:
            self.runs.items.update(
                head_key(run_id),
                Update(set={("status",): RUNNING, ("updatedAt",): now}, remove=[("error",)]),
                ((Cond(("status",), "eq", FAILED),),),
            )
        except ConditionFailed:
            current = self.head(run_id)
            self.statuses.changed(run_id, current.status, now, error=current.error)
            raise RunConflict(run_id, current.status, "redrive (it changed meanwhile)") from None
        # The failed nodes, and whatever else was ready when the run failed.
        sched = record.scheduler(plan.graph)
        waiting = set(record.awaiting_keys())
        ready = [
            k
            for k in dict.fromkeys([*failed, *sched.outstanding()])
            if k not in waiting
            and (k in failed or k not in record.nodes or not record.nodes[k].settled)
        ]
        cause = f"redrive {int(now)}"
        self.queue.send(
            [
                Job(run_id=run_id, blueprint_id=head.blueprint_id, node_id=k, cause=cause)
                for k in ready
            ]
        )
        return ready

    def _reopen(
        self,
        run_id: str,
        key: str,
        retry: PendingRetry,
        now: float,
        child: str | None = None,
    ) -> None:
        """A failed (or retrying) instance gets a fresh first attempt."""
        update = Update(
            set={("s",): RETRYING, ("n",): 0, ("rt",): retry.to_item()}, remove=[("e",), ("t",)]
        )
        if child is not None:
            update.set[("c",)] = child
        with contextlib.suppress(ConditionFailed):
            self.runs.items.update(
                node_key(run_id, key),
                update,
                ((Cond(("s",), "in", (FAILED, RETRYING)),),),
            )

    def cancel(self, run_id: str) -> None:
        head = self.head(run_id)
        if head.status == CANCELLED:
            self._cancel_children(head)  # a repeated cancel still reaches the children
        if head.status in FINAL_STATUSES:
            raise RunConflict(run_id, head.status, "cancel (it has finished)")
        now = self.clock.now()
        updated = self.runs.transition(
            run_id, to=CANCELLED, allowed_from=[RUNNING, AWAITING], now=now, error="cancelled"
        )
        if updated is None:
            current = self.head(run_id)
            raise RunConflict(run_id, current.status, "cancel (it has finished)")
        self.statuses.changed(run_id, CANCELLED, now)
        notify_parent(self.queue, updated)
        self._cancel_children(updated)

    def _cancel_children(self, head: RunHead) -> None:
        record = self.get(head.run_id, outputs=False)  # only the children's ids are needed
        for _key, node in record.nodes.items():
            if not node.settled and node.child:
                child = self.runs.head(node.child)
                if child is not None and not child.final:
                    # The child may finish meanwhile.
                    with contextlib.suppress(RunConflict, RunNotFound):
                        self.cancel(child.run_id)


def check_routes(plan: Plan, run_id: str, key: str, action: str | None) -> None:
    """Refuse a resume whose action no outgoing edge of the waiting node takes (when there is
    no default edge either): it would skip every branch and approve nothing."""
    node_id = split_key(key)[0]
    edges = plan.graph.out_edges[node_id]
    if not edges or any(e.action is None for e in edges):
        return
    valid = sorted({str(e.action) for e in edges})
    if action not in valid:
        raise InvalidResume(run_id, node_id, action, valid)


def pick_waiting(head: RunHead, node_id: str | None) -> str:
    try:
        return pick_waiting_key(sorted(head.waits), node_id)
    except LookupError as exc:
        raise RunConflict(head.run_id, head.status, f"resume {exc.args[0]}") from None


def notify_parent(queue: JobQueue, head: RunHead) -> None:
    """A finished child run wakes its parent's subflow node (which then reads the child)."""
    if head.parent:
        queue.send(
            [
                Job(
                    run_id=head.parent["runId"],
                    blueprint_id=head.parent["blueprintId"],
                    node_id=head.parent["node"],
                    cause=f"child {head.run_id} ended",
                )
            ]
        )
