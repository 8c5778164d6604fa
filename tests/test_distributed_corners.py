"""Corners of the distributed driver (docs/design.md) around sleeps, waits, maps, the
reconciler and the status table:

* a redelivered job continues a chain of inline-executed nodes where the invocation died;
* several instances of a wait node left by loop passes can each be resumed, as in memory;
* a node failing with a huge error message still fails its run (DynamoDB's 400 KB item limit);
* the status row of a resumed run stays in the reconciler's index, whatever the interleaving;
* a long sleep does not hide a stalled parallel branch from the reconciler;
* map items may sleep, as in memory;
* a map item's pending retry keeps its attempt number across a reconciler pass;
* a map's gathered results fit the run record like a plain node output of the same size.

Crashes and lost messages are simulated as in ``test_distributed_races``: a ``Crash`` escapes
every error handler (like a killed Lambda), a job removed from the in-memory queue is a message
that was dead-lettered, and a patched store call lets another actor act in the middle of a step.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from flowcraft_core import FlowRuntime, NodeResult
from flowcraft_core.testing import FakeClock

from .distributed_harness import Harness
from .scenarios import REGISTRY


class Crash(BaseException):
    """The Lambda dies at this point (a BaseException: no node error handling catches it)."""


def deliver_due_now(h: Harness) -> None:
    """Deliver the queued jobs that have no delay (SQS shows them before the delayed ones)."""
    while any(delay == 0 for _, delay in h.queue.sent):
        due = [job for job, delay in h.queue.sent if delay == 0]
        h.queue.sent[:] = [(job, delay) for job, delay in h.queue.sent if delay != 0]
        for job in due:
            asyncio.run(h.worker.handle_job(job))


# --------------------------------------------------------------------------------------------
# Inline chains: redelivery of the first job walks the committed nodes and goes on.
# --------------------------------------------------------------------------------------------
CHAIN = {
    "id": "chain",
    "nodes": [
        {"id": "A", "uses": "value", "params": {"value": 1}},
        {"id": "B", "uses": "echo"},
        {"id": "C", "uses": "dies_once"},
        {"id": "D", "uses": "echo"},
    ],
    "edges": [
        {"source": "A", "target": "B"},
        {"source": "B", "target": "C"},
        {"source": "C", "target": "D"},
    ],
}


def test_redelivered_job_continues_a_chain_where_the_invocation_died() -> None:
    died: list[str] = []

    def dies_once(ctx: Any) -> NodeResult:
        if not died:
            died.append(ctx.node_id)
            raise Crash("the invocation dies while running the third node of its chain")
        return NodeResult(output=ctx.input)

    h = Harness(blueprints={"chain": CHAIN}, registry={**REGISTRY, "dies_once": dies_once})
    run_id, _ = h.client.start("chain")
    [first] = h.queue.drain()
    with pytest.raises(Crash):
        asyncio.run(h.worker.handle_job(first))  # A and B commit (chained), C dies
    assert h.queue.sent == []
    asyncio.run(h.worker.handle_job(first))  # SQS redelivers the invocation's only message
    h.drain()
    record = h.client.get(run_id)
    assert record.status == "completed", sorted(record.nodes)


# --------------------------------------------------------------------------------------------
# Waits inside loops: every waiting instance can be resumed by node id, as in memory.
# --------------------------------------------------------------------------------------------
ASK_EVERY_PASS = {
    "id": "ask_every_pass",
    "nodes": [
        {"id": "init", "uses": "value", "params": {"value": 0}},
        {"id": "H", "uses": "count_up"},
        {"id": "ask", "uses": "wait"},
        {"id": "auto", "uses": "echo"},
        {"id": "J", "uses": "echo", "config": {"joinStrategy": "any"}},
        {"id": "done", "uses": "echo"},
    ],
    "edges": [
        {"source": "init", "target": "H"},
        {"source": "H", "target": "ask"},
        {"source": "H", "target": "auto"},
        # the loop goes on through `auto`; each pass leaves an `ask` instance waiting
        {"source": "ask", "target": "J"},
        {"source": "auto", "target": "J"},
        {"source": "J", "target": "H", "condition": "context.count < 3"},
        {"source": "J", "target": "done", "condition": "context.count >= 3"},
    ],
}


def test_waits_left_by_several_loop_passes_can_each_be_resumed_like_in_memory() -> None:
    runtime = FlowRuntime(
        REGISTRY, blueprints={"ask_every_pass": ASK_EVERY_PASS}, clock=FakeClock()
    )
    want = asyncio.run(runtime.run("ask_every_pass", {"count": 0}))
    assert want.state["awaiting"] == ["ask", "ask#1", "ask#2"]
    while want.status == "awaiting":
        want = asyncio.run(runtime.resume("ask_every_pass", want, node_id="ask", output="ok"))
    assert want.status == "completed"

    h = Harness(blueprints={"ask_every_pass": ASK_EVERY_PASS})
    run_id, _ = h.client.start("ask_every_pass", {"count": 0})
    h.drain()
    for _ in range(3):
        record = h.client.get(run_id)
        assert record.status == "awaiting", sorted(record.awaiting_keys())
        h.client.resume(run_id, node_id="ask", output="ok")
        h.drain()
    assert h.client.get(run_id).status == "completed"


# --------------------------------------------------------------------------------------------
# DynamoDB's item limit: failing a run must not itself overflow the item.
# --------------------------------------------------------------------------------------------
def _loud_failure(ctx: Any) -> NodeResult:
    # e.g. an HTTP client error that quotes the whole response body
    raise RuntimeError("upstream said: " + "x" * 450_000)


def test_node_failing_with_a_huge_error_message_fails_its_run_on_dynamodb(
    aws: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from .aws_harness import AwsHarness

    caplog.set_level(logging.CRITICAL, logger="flowcraft.worker")  # the message is 450 KB
    bp = {"id": "loud", "nodes": [{"id": "call", "uses": "loud"}]}
    h = AwsHarness(
        prefix="loud", blueprints={"loud": bp}, registry={**REGISTRY, "loud": _loud_failure}
    )
    run_id, _ = h.adapter.client.start("loud")
    raised: list[str] = []
    for _ in range(3):  # SQS redelivers a job whose handler raised
        messages = h.sqs.receive_message(QueueUrl=h.queue_url, WaitTimeSeconds=0).get("Messages")
        if not messages:
            break
        handle = messages[0]["ReceiptHandle"]
        try:
            asyncio.run(h.adapter.handle_message(messages[0]["Body"]))
        except Exception as exc:
            raised.append(type(exc).__name__)
            h.sqs.change_message_visibility(
                QueueUrl=h.queue_url, ReceiptHandle=handle, VisibilityTimeout=0
            )
        else:
            h.sqs.delete_message(QueueUrl=h.queue_url, ReceiptHandle=handle)
    record = h.adapter.client.get(run_id)
    assert record.status == "failed", (record.status, raised)
    assert (record.error or "").startswith("node 'call': RuntimeError: upstream said")


# --------------------------------------------------------------------------------------------
# Status table: a resumed run stays visible to the reconciler.
# --------------------------------------------------------------------------------------------
def test_status_row_stays_active_when_a_resume_overtakes_the_worker_parking_the_run() -> None:
    h = Harness()
    run_id, _ = h.client.start("approval")
    changed = h.statuses.changed
    resumed: list[str] = []

    def awaiting_written_late(rid: str, status: str, now: float, **kw: Any) -> None:
        if rid == run_id and status == "awaiting" and not resumed:
            # The run record says "awaiting" already; a person resumes before this write lands.
            resumed.append(h.client.resume(run_id, node_id="approve", action="yes", output=1))
        changed(rid, status, now, **kw)

    h.statuses.changed = awaiting_written_late  # type: ignore[method-assign,assignment]
    [first] = h.queue.drain()
    asyncio.run(h.worker.handle_job(first))  # request, then approve (chained) parks the run
    h.statuses.changed = changed  # type: ignore[method-assign]
    assert resumed == ["approve"]
    assert h.client.get(run_id).status == "running"
    # The resumed job is lost (dead-lettered after throttling, say): the reconciler's turn.
    assert [job.node_id for job in h.queue.drain()] == ["approve"]
    for _ in range(3):
        h.clock.advance(600)
        h.reconciler(threshold=300).run()
        h.drain()
    row = h.statuses.get(run_id) or {}
    assert h.client.get(run_id).status == "completed", (row.get("status"), row.get("active"))


# --------------------------------------------------------------------------------------------
# Sleeps and the reconciler: a sleeping branch does not shield a stalled one.
# --------------------------------------------------------------------------------------------
SLEEP_BESIDE_WORK = {
    "id": "sleep_beside_work",
    "nodes": [
        {"id": "S", "uses": "value", "params": {"value": 1}},
        {"id": "nap", "uses": "sleep", "params": {"duration": 86_400_000}},  # a day
        {"id": "A", "uses": "echo"},
        {"id": "B", "uses": "echo"},
        {"id": "C", "uses": "echo"},
    ],
    "edges": [
        {"source": "S", "target": "nap"},
        {"source": "S", "target": "A"},
        {"source": "A", "target": "B"},
        {"source": "A", "target": "C"},
    ],
}


def test_reconciler_recovers_a_stalled_branch_while_another_branch_sleeps() -> None:
    h = Harness(blueprints={"sleep_beside_work": SLEEP_BESIDE_WORK})
    run_id, _ = h.client.start("sleep_beside_work")
    [start] = h.queue.drain()
    asyncio.run(h.worker.handle_job(start))
    for job in sorted(h.queue.drain(), key=lambda j: j.node_id != "nap"):
        asyncio.run(h.worker.handle_job(job))  # nap parks for a day; A sends B and C
    assert "A" in h.client.get(run_id).nodes
    # B's and C's messages are lost (dead-lettered); the parked sleep waits on the queue.
    parked = [(job, delay) for job, delay in h.queue.sent if job.node_id == "nap"]
    h.queue.sent.clear()
    for _ in range(6):  # an hour of reconciler passes, long before the sleep ends
        h.clock.advance(600)
        h.reconciler(threshold=300).run()
        h.drain()
    record = h.client.get(run_id)
    assert {"B", "C"} <= set(record.nodes), sorted(record.nodes)
    h.queue.sent.extend(parked)
    h.drain()
    assert h.client.get(run_id).status == "completed"


# --------------------------------------------------------------------------------------------
# Map fan-out: items that sleep, item retries across the reconciler, the size of the results.
# --------------------------------------------------------------------------------------------
MAP_OF_SLEEPS = {
    "id": "map_of_sleeps",
    "nodes": [
        {
            "id": "m",
            "uses": "map",
            "params": {"items": "context.xs", "uses": "sleep", "params": {"duration": 5000}},
        }
    ],
}


def test_map_items_that_sleep_complete_like_in_memory() -> None:
    runtime = FlowRuntime(REGISTRY, blueprints={"map_of_sleeps": MAP_OF_SLEEPS}, clock=FakeClock())
    want = asyncio.run(runtime.run("map_of_sleeps", {"xs": [1, 2]}))
    assert want.status == "completed" and want.outputs["m"] == [1, 2]
    h = Harness(blueprints={"map_of_sleeps": MAP_OF_SLEEPS})
    run_id, _ = h.client.start("map_of_sleeps", {"xs": [1, 2]})
    h.drain()
    record = h.client.get(run_id)
    assert record.status == "completed", record.error
    assert record.to_api()["outputs"]["m"] == [1, 2]


def test_reconciler_keeps_a_map_items_pending_retry_attempt() -> None:
    attempts: list[int] = []

    def shaky(ctx: Any) -> NodeResult:
        attempts.append(ctx.attempt)
        raise RuntimeError("upstream 503")

    bp = {
        "id": "shaky_map",
        "nodes": [
            {
                "id": "m",
                "uses": "map",
                "params": {
                    "items": "context.xs",
                    "uses": "shaky",
                    "maxRetries": 1,
                    "retryDelay": 600_000,
                },
            }
        ],
    }
    h = Harness(blueprints={"shaky_map": bp}, registry={**REGISTRY, "shaky": shaky})
    run_id, _ = h.client.start("shaky_map", {"xs": ["a"]})
    [map_job] = h.queue.drain()
    asyncio.run(h.worker.handle_job(map_job))  # fans out: one item job
    [item_job] = h.queue.drain()
    asyncio.run(h.worker.handle_job(item_job))  # attempt 1 fails; attempt 2 queued for +600 s
    h.clock.advance(301)
    h.reconciler(threshold=300).run()  # the default threshold: the run looks stalled
    deliver_due_now(h)
    h.drain()
    assert h.client.get(run_id).status == "failed"
    assert attempts == [1, 2]  # maxRetries=1: two attempts in all


def test_map_results_fit_the_run_record_like_a_plain_node_output_of_the_same_size() -> None:
    bps = {
        "big_map": {
            "id": "big_map",
            "nodes": [
                {"id": "m", "uses": "map", "params": {"items": "context.xs", "uses": "big"}},
                {"id": "after", "uses": "value", "params": {"value": 1}},
            ],
            "edges": [{"source": "m", "target": "after"}],
        },
        "big_node": {
            "id": "big_node",
            "nodes": [
                {"id": "p", "uses": "big_pair"},
                {"id": "after", "uses": "value", "params": {"value": 1}},
            ],
            "edges": [{"source": "p", "target": "after"}],
        },
    }
    registry = {
        **REGISTRY,
        "big": lambda ctx: NodeResult(output="x" * 120_000),
        "big_pair": lambda ctx: NodeResult(output=["x" * 120_000] * 2),
    }
    h = Harness(blueprints=bps, registry=registry)
    plain, _ = h.client.start("big_node")
    h.drain()
    assert h.client.get(plain).status == "completed"  # 240 KB of output fits
    mapped, _ = h.client.start("big_map", {"xs": [1, 2]})
    h.drain()
    record = h.client.get(mapped)
    assert record.status == "completed", record.error  # the same 240 KB, gathered by a map
