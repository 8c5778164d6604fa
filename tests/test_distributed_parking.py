"""Parked work in the distributed driver (docs/design.md): sleeps, retry delays, waits for a
person or a child run, and map items, on the queues and stores a deployment uses.

Covered here:

* on a FIFO job queue, a job deferred until it is due (a sleep) does not hold back the other
  branches of its run;
* on a FIFO job queue, the job that wakes a parked node (a resume, a finished child run) is
  delivered even when it comes within SQS's five-minute deduplication interval of the job that
  first ran the node;
* a subflow node's next attempt (a new child run) waits for the node's ``retryDelay``, as in
  memory;
* a map item committed by one delivery is not undone by a concurrent delivery of the same item
  that fails, as for a plain node.

``DedupingFifoQueue`` plays SQS FIFO deduplication: a message whose deduplication id was sent in
the last five minutes is accepted and never delivered, even if the first one was consumed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from flowcraft_core import FlowRuntime, NodeContext, NodeResult
from flowcraft_core.aws.schema import QueueSpec
from flowcraft_core.distributed import (
    InMemoryItemStore,
    InMemoryJobQueue,
    InMemoryStatusStore,
    Job,
    Worker,
    WorkflowClient,
)
from flowcraft_core.distributed.errors import DeferJob
from flowcraft_core.testing import FakeClock

from .distributed_harness import Harness
from .scenarios import BLUEPRINTS, REGISTRY

# ------------------------------------------------------------------ this module as FLOWCRAFT_APP


def work(ctx: NodeContext) -> NodeResult:
    return NodeResult(output={"worked": True})


registry: dict[str, Any] = {"work": work}
blueprints: dict[str, dict[str, Any]] = {
    "nap_beside_work": {
        "id": "nap_beside_work",
        "nodes": [
            {"id": "start", "uses": "work"},
            {"id": "nap", "uses": "sleep", "params": {"duration": 3_600_000}},  # an hour
            {"id": "a", "uses": "work"},
            {"id": "b", "uses": "work"},
            {"id": "c", "uses": "work"},
        ],
        "edges": [
            {"source": "start", "target": "nap"},
            {"source": "start", "target": "a"},
            {"source": "a", "target": "b"},
            {"source": "a", "target": "c"},
        ],
    }
}
THIS_APP = __name__


# ------------------------------------------------------------------ FIFO: deferral and groups


def test_fifo_branch_runs_while_another_branch_of_its_run_is_deferred(
    aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In memory, ``b`` and ``c`` finish while ``nap`` sleeps; on a FIFO queue they must too,
    not an hour later when the deferred ``nap`` message leaves flight."""
    from handlers import config
    from tests.test_handlers import make_stack

    stack = make_stack(monkeypatch, QueueSpec(fifo=True))
    monkeypatch.setenv("FLOWCRAFT_APP", THIS_APP)
    config.reset()
    try:
        status, body = stack.call_api("POST", "/runs", {"blueprintId": "nap_beside_work"})
        assert status == 202, body
        run_id = body["runId"]
        assert stack.run_worker(stack.receive_exactly(1)) == []  # start: sends nap and a
        # nap parks (its parked message goes on the queue); a sends b and c behind it.
        assert stack.run_worker(stack.receive_exactly(2)) == []
        for _ in range(5):
            messages = stack.receive()
            if messages:
                stack.run_worker(messages)  # the parked nap is deferred by visibility
            nodes = stack.get(run_id)["nodes"]
            if nodes.get("b") == nodes.get("c") == "completed":
                break
        nodes = stack.get(run_id)["nodes"]
        assert nodes.get("b") == nodes.get("c") == "completed", nodes
    finally:
        config.reset()


@dataclass
class DedupingFifoQueue(InMemoryJobQueue):
    """SQS FIFO semantics the driver relies on: no per-message delay, and a deduplication id
    seen in the last five minutes is accepted but not delivered (even once consumed)."""

    clock: FakeClock = field(default_factory=FakeClock)
    seen: dict[str, float] = field(default_factory=dict)
    dropped: list[Job] = field(default_factory=list)
    supports_delay: bool = False

    def send(self, jobs: Sequence[Job], delay_seconds: int = 0) -> None:
        for job in jobs:
            dedup = job.dedup_id()
            sent = self.seen.get(dedup)
            if sent is not None and self.clock.now() - sent < 300:
                self.dropped.append(job)
                continue
            self.seen[dedup] = self.clock.now()
            self.sent.append((job, 0))


FORK_APPROVAL = {
    "id": "fork_approval",
    "nodes": [
        {"id": "request", "uses": "value", "params": {"value": {"amount": 5}}},
        {"id": "approve", "uses": "wait"},
        {"id": "note", "uses": "echo"},
        {"id": "ship", "uses": "echo"},
    ],
    "edges": [
        {"source": "request", "target": "approve"},
        {"source": "request", "target": "note"},
        {"source": "approve", "target": "ship"},
    ],
}
FIFO_BLUEPRINTS = {**BLUEPRINTS, "fork_approval": FORK_APPROVAL}


def _fifo_setup() -> tuple[FakeClock, DedupingFifoQueue, Worker, WorkflowClient]:
    clock = FakeClock()
    items, statuses = InMemoryItemStore(), InMemoryStatusStore()
    queue = DedupingFifoQueue(clock=clock)
    worker = Worker(
        items=items,
        statuses=statuses,
        queue=queue,
        blueprints=FIFO_BLUEPRINTS,
        registry=REGISTRY,
        clock=clock,
    )
    client = WorkflowClient(
        runs=worker.runs, statuses=statuses, queue=queue, blueprints=FIFO_BLUEPRINTS, clock=clock
    )
    return clock, queue, worker, client


def _drain_fifo(clock: FakeClock, queue: DedupingFifoQueue, worker: Worker) -> None:
    for _ in range(100):
        if not queue.sent:
            return
        job, _ = queue.sent.pop(0)
        try:
            asyncio.run(worker.handle_job(job))
        except DeferJob as defer:
            clock.advance(defer.seconds)
            queue.sent.append((job, 0))


def test_fifo_resume_within_five_minutes_of_the_wait_reaches_the_worker() -> None:
    clock, queue, worker, client = _fifo_setup()
    run_id, _ = client.start("fork_approval")
    _drain_fifo(clock, queue, worker)  # request sends approve and note; approve waits
    assert client.get(run_id).status == "awaiting"
    clock.advance(30)  # the approver answers half a minute later
    client.resume(run_id, node_id="approve", output={"ok": True})
    _drain_fifo(clock, queue, worker)
    record = client.get(run_id)
    assert record.status == "completed", ([j.dedup_id() for j in queue.dropped], record.status)


def test_fifo_finished_child_run_wakes_its_parent_subflow_node() -> None:
    clock, queue, worker, client = _fifo_setup()
    run_id, _ = client.start("subflow")
    _drain_fifo(clock, queue, worker)
    assert client.get(f"{run_id}--sub").status == "completed"
    record = client.get(run_id)
    assert record.status == "completed", ([j.dedup_id() for j in queue.dropped], record.status)


# ------------------------------------------------------------------ subflow retries


def test_subflow_next_attempt_waits_the_retry_delay_like_in_memory() -> None:
    calls: list[float] = []
    clocks: dict[str, FakeClock] = {}

    def flaky_once(ctx: NodeContext) -> NodeResult:
        calls.append(clocks["clock"].now())
        if len(calls) == 1:
            raise RuntimeError("first child attempt fails")
        return NodeResult(output="ok")

    bps = {
        "once_child": {"id": "once_child", "nodes": [{"id": "c", "uses": "flaky_once"}]},
        "retried_sub": {
            "id": "retried_sub",
            "nodes": [
                {
                    "id": "sub",
                    "uses": "subflow",
                    "params": {"blueprintId": "once_child"},
                    "config": {"maxRetries": 1, "retryDelay": 600_000},
                }
            ],
        },
    }
    reg = {**REGISTRY, "flaky_once": flaky_once}
    clocks["clock"] = FakeClock()
    runtime = FlowRuntime(reg, blueprints=bps, clock=clocks["clock"])
    want = asyncio.run(runtime.run("retried_sub", {}))
    assert want.status == "completed"
    assert calls[1] - calls[0] >= 600  # in memory, the second attempt waits retryDelay

    calls.clear()
    h = Harness(blueprints=bps, registry=reg)
    clocks["clock"] = h.clock
    run_id, _ = h.client.start("retried_sub")
    h.drain()
    assert h.client.get(run_id).status == "completed"
    assert len(calls) == 2
    assert calls[1] - calls[0] >= 600, f"second child started {calls[1] - calls[0]} s after"


# ------------------------------------------------------------------ map items and duplicates


def test_map_item_committed_by_one_delivery_survives_a_failing_duplicate() -> None:
    """A plain node committed by one delivery wins over a duplicate's failed attempt; a map
    item committed by one delivery must win too."""
    holder: dict[str, Any] = {}

    def racy(ctx: NodeContext) -> NodeResult:
        h: Harness = holder["h"]
        if ctx.input == "a" and not holder.get("raced"):
            holder["raced"] = True
            # Meanwhile, another delivery of this item job succeeded and committed the item.
            h.runs.commit(
                holder["run_id"],
                "m[0]",
                output="A",
                action=None,
                attempts=1,
                decisions={},
                context_set={},
                context_delete=(),
                now=h.clock.now(),
                where="node 'm': item 0",
            )
            raise RuntimeError("this delivery hit a transient error")
        return NodeResult(output=str(ctx.input).upper())

    bp = {
        "id": "racy_map",
        "nodes": [
            {
                "id": "m",
                "uses": "map",
                "params": {"items": "context.xs", "uses": "racy", "concurrency": 1},
            }
        ],
    }
    h = Harness(blueprints={"racy_map": bp}, registry={**REGISTRY, "racy": racy})
    holder["h"] = h
    run_id, _ = h.client.start("racy_map", {"xs": ["a", "b"]})
    holder["run_id"] = run_id
    h.drain()
    record = h.client.get(run_id)
    assert record.status == "completed", record.error
    assert record.to_api()["outputs"]["m"] == ["A", "B"]
