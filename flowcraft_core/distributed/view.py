"""A whole run read back from its items, and what needs the whole run: ``GET /runs/{runId}``,
the reconciler and the awaiting check, never a node's step (docs/design.md, section 3, "What
needs the whole run").
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..builtins.map import map_item_instance
from ..scheduler import (
    CompiledGraph,
    Loop,
    decision_key,
    instance_key,
    latest_by_node,
    split_key,
)
from ..status import AWAITING, FAILED
from .commits import index_decisions
from .errors import CommitRejected
from .items import Item
from .job import Job
from .layout import (
    fanout_key,
    join_key,
    loop_exits_key,
    node_key,
)
from .parking import delay_of
from .payloads import ValueCodec
from .plan import Plan
from .records import (
    COMPLETED,
    RUNNING,
    FanoutProgress,
    FanoutRecord,
    NodeRecord,
    RunHead,
    RunRecord,
    iso_utc,
    shown_status,
)
from .state import RunItems, head_from_item, node_from_item

if TYPE_CHECKING:
    from .worker import Worker

logger = logging.getLogger("flowcraft.worker")

#: How many passes of a loop are read per request while looking for the last one.
PASSES_PER_READ = 5


class RunViews:
    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    # ------------------------------------------------------------------ reading
    def load(
        self, plan: Plan, run_id: str, *, outputs: bool = True, fanouts: bool = False
    ) -> RunRecord | None:
        return load_run(self.worker.runs, plan, run_id, outputs=outputs, fanouts=fanouts)

    def latest_instances(
        self, plan: Plan, run_id: str, node_ids: list[str], current: str
    ) -> dict[str, str]:
        """The latest settled instance of each node (a loop member's last pass)."""
        graph = plan.graph
        found: dict[str, str] = {}
        current_node, current_iteration = split_key(current)
        for node_id in node_ids:
            loop = graph.loop_of.get(node_id)
            if loop is None:
                found[node_id] = node_id
                continue
            if loop == graph.loop_of.get(current_node):
                found[node_id] = instance_key(node_id, max(0, current_iteration))
                records = self.worker.runs.nodes(run_id, [found[node_id]])
                if found[node_id] not in records and current_iteration > 0:
                    found[node_id] = instance_key(node_id, current_iteration - 1)
                continue
            iteration = 0
            while True:
                batch = [instance_key(node_id, i) for i in range(iteration, iteration + 10)]
                records = self.worker.runs.nodes(run_id, batch)
                if not records:
                    break
                found[node_id] = max(records, key=lambda k: split_key(k)[1])
                if len(records) < len(batch):
                    break
                iteration += 10
        return found

    # ------------------------------------------------------------------ awaiting
    def park_if_quiet(self, plan: Plan, run_id: str) -> None:
        """Mark the run ``awaiting`` when every instance still to settle waits for a resume."""
        worker = self.worker
        record = self.load(plan, run_id, outputs=False)
        if record is None or record.status != RUNNING:
            return
        sched = record.scheduler(plan.graph)
        outstanding = set(sched.outstanding())
        awaiting = set(record.awaiting_keys())
        if not outstanding or not outstanding <= awaiting or awaiting & set(record.resumes):
            return
        now = worker.clock.now()
        parked = worker.runs.transition(
            run_id, to=AWAITING, allowed_from=[RUNNING], now=now, waits=awaiting
        )
        if parked is not None:
            worker.statuses.changed(run_id, AWAITING, now)
            self.recheck_status_row(run_id, AWAITING)
            # A child run that waits makes its parent's subflow node wait too.
            from .client import notify_parent

            notify_parent(worker.queue, parked)

    def recheck_status_row(self, run_id: str, written: str) -> None:
        """A resume may have overtaken us between the head and the row: mirror the head."""
        current = self.worker.runs.head(run_id)
        if current is not None and current.status != written:
            self.worker.statuses.changed(
                run_id, current.status, self.worker.clock.now(), error=current.error
            )

    # ------------------------------------------------------------------ recovery
    def restart_stalled(self, plan: Plan, record: RunRecord) -> tuple[int, float]:
        """Reconciler entry: finish what interrupted steps left undone, re-send the nodes that
        are ready and not settled, and close the run when it is done.

        Settled instances whose successors are not all settled are advanced again (their
        arrivals are idempotent), which records missing skips, loop ends and end-join arrivals.
        Nodes parked until later (a sleep, a retry delay) are left alone: their jobs are on the
        queue; one whose time has passed is re-sent as the attempt it was waiting for. Returns
        the jobs sent and when the run should be looked at again.
        """
        worker = self.worker
        graph = plan.graph
        now = worker.clock.now()
        head = worker.runs.head(record.run_id)
        if head is None or head.status != RUNNING:
            return 0, now
        try:
            advanced = worker.advancer.advance(plan, record.run_id, _frontier(plan, record))
        except CommitRejected:
            return 0, now
        if advanced.run_complete:
            worker.finish_run(head)
            return 0, now
        record = self.load(plan, record.run_id, outputs=False, fanouts=True) or record
        sched = record.scheduler(graph)
        awaiting = set(record.awaiting_keys())
        ready = [
            k
            for k in dict.fromkeys([*sched.outstanding(), *advanced.ready])
            if (k not in record.nodes or not record.nodes[k].settled)
            and (k not in awaiting or k in record.resumes)
        ]
        jobs = [job for key in ready for job in self._jobs_for(plan, record, key, now)]
        for job in jobs:
            delay = 0 if job.not_before is None else job.not_before - now
            worker.send([job], delay_seconds=delay_of(delay))
        if not jobs and not ready:
            self.park_if_quiet(plan, record.run_id)
        return len(jobs), self.parked_until(record, plan) or now

    def _jobs_for(self, plan: Plan, record: RunRecord, key: str, now: float) -> list[Job]:
        """What re-sends a ready instance: its own job, or for a map that fanned out, the next
        item of each unfinished lane (the gathering job once every item is in)."""
        fan = record.fanouts.get(key)
        if fan is None or key in record.nodes:
            job = self._recovery_job(plan, record, key, key, None, now)
            return [job] if job is not None else []
        pending = fan.unfinished()
        if not pending:
            return [Job(run_id=record.run_id, blueprint_id=plan.graph.id, node_id=key)]
        jobs = []
        for index in pending[: fan.concurrency]:
            job = self._recovery_job(plan, record, key, map_item_instance(key, index), index, now)
            if job is not None:
                jobs.append(job)
        return jobs

    def _recovery_job(
        self,
        plan: Plan,
        record: RunRecord,
        key: str,
        instance: str,
        item: int | None,
        now: float,
    ) -> Job | None:
        """The job that resumes a node (or map item) after its messages may have been lost;
        None while it is parked and not yet due (its parked message is still on the queue)."""
        due = record.park_due(instance)
        if due is not None and due > now:
            return None
        job = Job(
            run_id=record.run_id,
            blueprint_id=plan.graph.id,
            node_id=key,
            item=item,
            cause=f"recovered at {int(now)}",
        )
        parked = record.nodes.get(instance)
        if parked is None and item is not None:
            fan = record.fanouts.get(key)
            parked = fan.parked.get(item) if fan is not None else None
        if parked is not None and parked.retry is not None:
            job.attempt = parked.retry.attempt
            job.not_before = parked.retry.not_before
        return job

    def parked_until(self, record: RunRecord, plan: Plan) -> float | None:
        """When every branch still to run is parked (sleeps, retry delays): the earliest due
        time. None when some branch is not parked (the run is simply busy, or stalled)."""
        sched = record.scheduler(plan.graph)
        awaiting = set(record.awaiting_keys())
        due_times: list[float] = []
        now = self.worker.clock.now()
        for key in sched.outstanding():
            if key in awaiting:
                continue
            fan = record.fanouts.get(key)
            keys = (
                [map_item_instance(key, i) for i in fan.unfinished()]
                if fan is not None and key not in record.nodes
                else [key]
            )
            for instance in keys:
                due = record.park_due(instance)
                if due is None or due <= now:
                    return None
                due_times.append(due)
        return min(due_times) if due_times else None


def load_run(
    runs: RunItems, plan: Plan, run_id: str, *, outputs: bool = True, fanouts: bool = False
) -> RunRecord | None:
    """The whole run: its head and every node record (decoded outputs unless told not to)."""
    graph = plan.graph
    plain = [n for n in graph.order if n not in graph.loop_of]
    extra = [join_key(run_id, n) for n in plain if plan.is_any_join(n)]
    extra += [loop_exits_key(run_id, loop.index) for loop in graph.loops]
    raw = runs.raw([run_id, *(node_key(run_id, n) for n in plain), *extra])
    head_item = raw.get(run_id)
    if head_item is None:
        return None
    head = head_from_item(head_item)
    nodes: dict[str, NodeRecord] = {
        n: node_from_item(raw[node_key(run_id, n)], n) for n in plain if node_key(run_id, n) in raw
    }
    for loop in graph.loops:
        nodes.update(_loop_passes(runs, graph, run_id, loop))
    record = RunRecord(
        run_id=run_id,
        blueprint_id=head.blueprint_id,
        status=head.status,
        context={k: runs.context_value(run_id, k, v) for k, v in head.context.items()},
        nodes=nodes,
        created_at=head.created_at,
        updated_at=head.updated_at,
        error=head.error,
        parent=head.parent,
    )
    if outputs:
        for rec in nodes.values():
            if rec.status == COMPLETED:
                rec.output = runs.codec.decode(rec.stored)
    _note_join_owners(plan, raw, record, plain)
    _note_ended_loops(plan, raw, record)
    if fanouts:
        _load_fanouts(runs, plan, record)
    return record


def _frontier(plan: Plan, record: RunRecord) -> list[tuple[str, dict[int, bool]]]:
    """Settled instances whose successors are not all settled (and loop members and sinks):
    advancing them again records what an interrupted step left undone."""
    graph = plan.graph
    sched = record.scheduler(graph)
    frontier = []
    for key, node in record.nodes.items():
        if not node.settled:
            continue
        successors = sched.successor_instances(key)
        if (
            not successors
            or split_key(key)[0] in graph.loop_of
            or any(s not in record.nodes or not record.nodes[s].settled for s in successors)
        ):
            frontier.append((key, index_decisions(node)))
    return frontier


def _loop_passes(
    runs: RunItems, graph: CompiledGraph, run_id: str, loop: Loop
) -> dict[str, NodeRecord]:
    """Every stored pass of a loop's members, read a few passes per request until one is
    missing."""
    members = sorted(loop.members, key=graph.order.index)
    nodes: dict[str, NodeRecord] = {}
    iteration = 0
    while True:
        batch = [
            instance_key(m, i)
            for i in range(iteration, iteration + PASSES_PER_READ)
            for m in members
        ]
        found = runs.nodes(run_id, batch)
        nodes.update(found)
        if len(found) < len(batch):
            return nodes
        iteration += PASSES_PER_READ


def _note_join_owners(
    plan: Plan, raw: Mapping[str, Item], record: RunRecord, plain: list[str]
) -> None:
    """Which arrival fired each ``any`` join (a replay must credit that one, not a later one)."""
    run_id = record.run_id
    for node_id in plain:
        if not plan.is_any_join(node_id):
            continue
        owner = (raw.get(join_key(run_id, node_id)) or {}).get("f")
        if owner is None:
            continue
        edge = plan.expected(node_id, 0)[int(owner)]
        source = plan.source_instance(edge, 0)
        if source is not None:
            record.fired_by[node_id] = decision_key(edge.index, split_key(source)[1])


def _note_ended_loops(plan: Plan, raw: Mapping[str, Item], record: RunRecord) -> None:
    """The exits a loop did not take once it ended: decided as not taken."""
    for loop in plan.graph.loops:
        exits = raw.get(loop_exits_key(record.run_id, loop.index)) or {}
        if "end" in exits:
            taken = exits.get("x") or {}
            for edge in loop.exit_edges:
                if str(edge.index) not in taken:
                    record.decisions[str(edge.index)] = False


def _load_fanouts(runs: RunItems, plan: Plan, record: RunRecord) -> None:
    """How far each open map that fanned out has got (which items settled, which are parked)."""
    open_keys = [k for k, r in record.nodes.items() if not r.settled or r.status == FAILED]
    sched = record.scheduler(plan.graph)
    open_keys += [k for k in sched.outstanding() if k not in record.nodes]
    stored = runs.raw([fanout_key(record.run_id, k) for k in open_keys])
    for key in open_keys:
        item = stored.get(fanout_key(record.run_id, key))
        if item is None:
            continue
        fan = FanoutRecord.from_item(item)
        names = [map_item_instance(key, i) for i in range(fan.count)]
        items = runs.nodes(record.run_id, names)
        record.fanouts[key] = FanoutProgress(
            count=fan.count,
            concurrency=fan.map_spec().concurrency,
            done={i for i, n in enumerate(names) if n in items and items[n].settled},
            parked={
                i: items[n] for i, n in enumerate(names) if n in items and not items[n].settled
            },
        )


# ---------------------------------------------------------------------------------- the API
#: ``GET /runs/{runId}`` lists node statuses and outputs for blueprints up to this many nodes;
#: larger runs show counts, and their nodes are read page by page.
SUMMARY_NODES = 200
#: Bytes of decoded values one answer carries (Lambda answers at most 6 MB).
ANSWER_BUDGET = 2 * 1024 * 1024
#: Timeline fields shown as ISO 8601 times.
_TIMES = frozenset({"finishedAt", "nextAttemptAt", "wakeAt"})
#: A single value larger than this is shown as a reference, not inline.
VALUE_BUDGET = 256 * 1024


def shown(runs: RunItems, envelope: Any, budget: list[int]) -> Any:
    """A stored value for an answer: decoded while the answer's byte budget lasts, else a
    placeholder naming its size (the value itself is intact in the run)."""
    size = ValueCodec.stored_size(envelope)
    if ValueCodec.is_reference(envelope) or "z" in (envelope or {}):
        raw_size = int(envelope.get("n", 0)) if ValueCodec.is_reference(envelope) else size * 4
    else:
        raw_size = size
    if raw_size > VALUE_BUDGET or raw_size > budget[0]:
        return {"$omitted": "too large for this answer", "storedBytes": size}
    value = runs.codec.decode(envelope)
    budget[0] -= len(json.dumps(value, default=str))
    return value


def run_view(runs: RunItems, plan: Plan, run_id: str) -> dict[str, Any] | None:
    """``GET /runs/{runId}``: status, context, and a summary that stays small for any run."""
    head = runs.head(run_id)
    if head is None:
        return None
    budget = [ANSWER_BUDGET]
    body: dict[str, Any] = {
        "runId": run_id,
        "blueprintId": head.blueprint_id,
        "status": head.status,
        "context": {},
        "createdAt": iso_utc(head.created_at),
        "updatedAt": iso_utc(head.updated_at),
    }
    for key, stored in head.context.items():
        if isinstance(stored, Mapping) and "at" in stored:
            body["context"][key] = runs.context_value(run_id, key, stored)
        else:
            body["context"][key] = shown(runs, stored, budget)
    if head.error:
        body["error"] = head.error
    if len(plan.graph.order) <= SUMMARY_NODES:
        record = load_run(runs, plan, run_id, outputs=False)
        if record is not None:
            full = record.to_api()
            body["nodes"] = full["nodes"]
            if head.status == RUNNING:
                # Instances made ready that have no record yet are running (or queued).
                sched = record.scheduler(plan.graph)
                for key in sched.outstanding():
                    if key not in record.nodes:
                        body["nodes"][split_key(key)[0]] = RUNNING
            body["timeline"] = [
                {k: iso_utc(v) if k in _TIMES and v is not None else v for k, v in entry.items()}
                for entry in full["timeline"]
            ]
            latest = latest_by_node(
                {k: n.stored for k, n in record.nodes.items() if n.status == COMPLETED}
            )
            body["outputs"] = {
                n: shown(runs, latest[n], budget) for n in plan.graph.order if n in latest
            }
            parked = {
                k: shown(runs, n.stored, budget)
                for k, n in record.nodes.items()
                if shown_status(n.status, head.status) == AWAITING and n.stored is not None
            }
            if parked:
                # What waiting nodes show, such as a webhook's {url, token, event}.
                body["awaitingOutputs"] = parked
    body["summary"] = {"nodes": len(plan.graph.order), "nodesPage": f"/runs/{run_id}/nodes"}
    return body


def node_page(
    runs: RunItems, plan: Plan, head: RunHead, limit: int, token: str | None
) -> dict[str, Any]:
    """``GET /runs/{runId}/nodes``: node instances in blueprint order (each loop pass of a
    member in turn), at most ``limit`` and within the answer's byte budget."""
    order, run_id = plan.graph.order, head.run_id
    position, iteration = 0, 0
    if token:
        try:
            decoded = json.loads(base64.urlsafe_b64decode(token.encode()).decode())
            position, iteration = int(decoded["i"]), int(decoded["k"])
        except (ValueError, KeyError, TypeError):
            raise ValueError("nextToken is not one this API gave out") from None
    budget = [ANSWER_BUDGET]
    items: list[dict[str, Any]] = []
    loop_of = plan.graph.loop_of
    while position < len(order) and len(items) < limit and budget[0] > 0:
        node_id = order[position]
        if node_id in loop_of:
            batch = [instance_key(node_id, k) for k in range(iteration, iteration + 10)]
        else:
            batch = []
            end = position
            while end < len(order) and order[end] not in loop_of and len(batch) < limit:
                batch.append(order[end])
                end += 1
        found = runs.nodes(run_id, batch)
        for key in batch:
            if len(items) >= limit or budget[0] <= 0:
                break
            node = found.get(key)
            if node_id in loop_of:
                if node is None:
                    position, iteration = position + 1, 0
                    break
                items.append(_entry(runs, key, node, head.status, budget))
                iteration += 1
            else:
                if node is not None:
                    items.append(_entry(runs, key, node, head.status, budget))
                position += 1
    page: dict[str, Any] = {"runId": run_id, "items": items}
    if position < len(order):
        marker = json.dumps({"i": position, "k": iteration}).encode()
        page["nextToken"] = base64.urlsafe_b64encode(marker).decode()
    return page


def _entry(
    runs: RunItems, key: str, node: NodeRecord, run_status: str, budget: list[int]
) -> dict[str, Any]:
    status = shown_status(node.status, run_status)
    entry: dict[str, Any] = {
        "nodeId": split_key(key)[0],
        "instance": key,
        "status": status,
        "attempts": node.attempts,
    }
    if node.action is not None:
        entry["action"] = node.action
    if node.error:
        entry["error"] = node.error
    if node.finished_at is not None:
        entry["finishedAt"] = iso_utc(node.finished_at)
    if node.retry is not None:
        entry["nextAttemptAt"] = iso_utc(node.retry.not_before)
    if node.wake is not None and not node.settled:
        entry["wakeAt"] = iso_utc(node.wake)
    if status == COMPLETED or (status == AWAITING and node.stored is not None):
        entry["output"] = shown(runs, node.stored, budget)
    return entry
