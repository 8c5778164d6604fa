"""The distributed driver on real SQS and DynamoDB wire APIs (moto server): results, crashes
after every AWS call, duplicates, the reconciler's cost, and poison input."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from typing import Any

import boto3
import pytest

from flowcraft_core import FlowRuntime
from flowcraft_core.aws import DynamoDbContext, DynamoDbCoordinationStore
from flowcraft_core.distributed import RunConflict
from flowcraft_core.testing import FakeClock

from .aws_harness import AwsHarness, Crash
from .scenarios import BLUEPRINTS, REGISTRY


def expected(blueprint_id: str, context: dict[str, Any] | None = None) -> Any:
    runtime = FlowRuntime(REGISTRY, blueprints=BLUEPRINTS, clock=FakeClock())
    return asyncio.run(runtime.run(BLUEPRINTS[blueprint_id], context or {}))


@pytest.mark.parametrize(
    ("blueprint_id", "context"),
    [
        ("mixed", {}),
        ("loop", {"count": 0}),
        ("fallback", {}),
        ("map", {"numbers": [3, 4]}),
        ("failing", {}),
    ],
)
def test_same_results_as_in_memory(aws: Any, blueprint_id: str, context: dict[str, Any]) -> None:
    h = AwsHarness()
    want = expected(blueprint_id, context)
    run_id, _ = h.adapter.client.start(blueprint_id, context)
    h.pump()
    view = h.adapter.client.get(run_id).to_api()
    assert view["status"] == want.status
    status_item = h.adapter.statuses.get(run_id)
    assert status_item is not None and status_item["status"] == want.status
    assert "activeShard" not in status_item  # left the reconciler's index
    if want.status == "completed":
        assert view["outputs"] == want.outputs
        assert view["context"] == want.context


def test_crash_after_every_aws_call_keeps_the_invariants(aws: Any) -> None:
    h = AwsHarness()
    want = expected("mixed")
    commits: Counter[tuple[str, str]] = Counter()
    finals: Counter[str] = Counter()
    original_commit = h.adapter.runs.commit
    original_transition = h.adapter.runs.transition

    # Each store method makes exactly one AWS call, so a Crash raised inside it means that call
    # went through: the write happened even though the caller never saw the answer.
    def commit(run_id: str, key: str, *args: Any, **kwargs: Any) -> Any:
        try:
            result = original_commit(run_id, key, *args, **kwargs)
        except Crash:
            commits[(run_id, key)] += 1
            raise
        commits[(run_id, key)] += 1
        return result

    def transition(run_id: str, **kwargs: Any) -> Any:
        final = kwargs["to"] in {"completed", "failed", "cancelled"}
        try:
            result = original_transition(run_id, **kwargs)
        except Crash:
            finals[run_id] += final  # a crash here means the conditional write succeeded
            raise
        if result is not None and final:
            finals[run_id] += 1
        return result

    h.adapter.runs.commit = commit  # type: ignore[method-assign]
    h.adapter.runs.transition = transition  # type: ignore[method-assign]

    for k, run_id in h.crash_after_each_call("mixed", {}):
        view = h.adapter.client.get(run_id).to_api()
        assert view["status"] == "completed", (k, view)
        assert view["outputs"] == want.outputs, k
        assert view["context"] == want.context, k
        run_commits = {key: n for (rid, key), n in commits.items() if rid == run_id}
        assert all(n == 1 for n in run_commits.values()), (k, run_commits)
        assert run_commits["all_join"] == 1 and run_commits["any_join"] == 1
        assert finals[run_id] == 1, k


WIDE = {
    "id": "wide",
    "nodes": [
        {"id": "s", "uses": "value", "params": {"value": 2}},
        *({"id": f"w{i}", "uses": "square"} for i in range(6)),
        {"id": "all", "uses": "echo"},
        {"id": "any", "uses": "echo", "config": {"joinStrategy": "any"}},
        {"id": "end", "uses": "echo"},
    ],
    "edges": [
        *({"source": "s", "target": f"w{i}"} for i in range(6)),
        *({"source": f"w{i}", "target": "all"} for i in range(6)),
        *({"source": f"w{i}", "target": "any"} for i in range(6)),
        {"source": "all", "target": "end"},
        {"source": "any", "target": "end"},
    ],
}
_BLOB = "".join(f"{i:06x}{(i * 2654435761) % 2**32:08x}" for i in range(8000))  # ~112 KB


async def _big_writer(ctx: Any) -> dict[str, Any]:
    await ctx.context.set("notes", _BLOB[:5000])
    return {"output": {"blob": _BLOB}}


def _big_reader(ctx: Any) -> dict[str, Any]:
    return {"output": len(ctx.input["blob"])}


BIG_CHAIN = {
    "id": "big_chain",
    "nodes": [
        {"id": "write", "uses": "big_writer"},
        {"id": "read", "uses": "big_reader"},
        {"id": "after", "uses": "echo"},
    ],
    "edges": [{"source": "write", "target": "read"}, {"source": "read", "target": "after"}],
}


@pytest.mark.parametrize(
    ("blueprint_id", "node", "output"),
    [
        ("wide", "end", {"all": {f"w{i}": 4 for i in range(6)}, "any": 4}),
        ("big_chain", "after", len(_BLOB)),
    ],
)
def test_crash_after_every_aws_call_of_wide_joins_and_large_values(
    aws: Any, blueprint_id: str, node: str, output: Any
) -> None:
    registry = {**REGISTRY, "big_writer": _big_writer, "big_reader": _big_reader}
    h = AwsHarness(
        prefix=blueprint_id,
        blueprints={"wide": WIDE, "big_chain": BIG_CHAIN},
        registry=registry,
        bucket_size=4,  # the 6-wide joins count their arrivals in buckets
    )
    for k, run_id in h.crash_after_each_call(blueprint_id, {}):
        record = h.adapter.client.get(run_id)
        assert record.status == "completed", (k, record.status, record.error)
        assert record.nodes[node].output == output, k
        if blueprint_id == "big_chain":
            assert record.context["notes"] == _BLOB[:5000], k


@pytest.mark.parametrize(
    ("blueprint_id", "context", "node", "output"),
    [
        ("map", {"numbers": [1, 2, 3, 4, 5]}, "m", [1, 4, 9, 16, 25]),
        ("subflow", {}, "after", {}),
        ("loop", {"count": 0}, "done", 3),
        ("fallback", {}, "after", {"recovered": 7}),
    ],
)
def test_crash_after_every_aws_call_of_maps_child_runs_loops_and_fallbacks(
    aws: Any, blueprint_id: str, context: dict[str, Any], node: str, output: Any
) -> None:
    h = AwsHarness()
    for k, run_id in h.crash_after_each_call(blueprint_id, context):
        view = h.adapter.client.get(run_id).to_api()
        assert view["status"] == "completed", (k, view)
        assert view["outputs"][node] == output, k


def test_every_message_delivered_twice(aws: Any) -> None:
    h = AwsHarness()
    want = expected("mixed")
    run_id, _ = h.adapter.client.start("mixed")

    def duplicate(message: dict[str, Any]) -> None:
        asyncio.run(h.adapter.handle_message(message["Body"]))

    h.pump(on_message=duplicate)
    view = h.adapter.client.get(run_id).to_api()
    assert view["status"] == "completed" and view["outputs"] == want.outputs


def test_wait_resume_and_cancel_over_aws(aws: Any) -> None:
    h = AwsHarness()
    run_id, _ = h.adapter.client.start("approval")
    h.pump()
    assert h.adapter.client.get(run_id).status == "awaiting"
    h.adapter.client.resume(run_id, action="yes", output={"ok": True})
    h.pump()
    view = h.adapter.client.get(run_id).to_api()
    assert view["status"] == "completed" and view["nodes"]["refund"] == "skipped"
    other, _ = h.adapter.client.start("approval")
    h.adapter.client.cancel(other)
    h.pump()
    assert h.adapter.client.get(other).status == "cancelled"
    with pytest.raises(RunConflict):
        h.adapter.client.resume(other, action="yes")


def test_reconciler_reads_only_stale_runs(aws: Any) -> None:
    h = AwsHarness()
    for i in range(5):
        h.adapter.client.start("if_else", run_id=f"done-{i}")
    h.pump()
    stalled, _ = h.adapter.client.start("if_else", run_id="stalled")
    h.sqs.purge_queue(QueueUrl=h.queue_url)  # its start job is lost
    stats = h.reconcile(threshold=0)
    # Only the one active run is read from the index; finished runs left it.
    assert stats.scanned_items == 1 and stats.stalled_runs == 1 and stats.jobs_sent == 1
    h.pump()
    assert h.adapter.client.get(stalled).status == "completed"
    assert h.reconcile(threshold=0).scanned_items == 0


def test_poison_input_over_aws(aws: Any) -> None:
    h = AwsHarness()
    with pytest.raises(ValueError):
        asyncio.run(h.adapter.handle_message("not json"))
    with pytest.raises(ValueError):
        asyncio.run(h.adapter.handle_message('{"runId": "x"}'))
    from flowcraft_core.distributed import PoisonJob

    with pytest.raises(PoisonJob):
        asyncio.run(
            h.adapter.handle_message(
                '{"runId": "ghost", "blueprintId": "mixed", "nodeId": "start"}'
            )
        )


def test_a_25_mb_value_goes_through_the_payload_bucket_and_reads_back(aws: Any) -> None:
    import base64
    import hashlib
    import os

    blob = base64.b64encode(os.urandom(19 * 1024 * 1024)).decode()  # ~25 MB, incompressible

    async def big(ctx: Any) -> dict[str, Any]:
        await ctx.context.set("report", blob[:200_000])
        return {"output": {"blob": blob}}

    def digest(ctx: Any) -> dict[str, Any]:
        return {"output": hashlib.sha256(ctx.input["blob"].encode()).hexdigest()}

    bp = {
        "id": "big",
        "nodes": [{"id": "writer", "uses": "big"}, {"id": "reader", "uses": "digest"}],
        "edges": [{"source": "writer", "target": "reader"}],
    }
    h = AwsHarness(prefix="big", blueprints={"big": bp}, registry={"big": big, "digest": digest})
    run_id, _ = h.adapter.client.start("big")
    h.pump()
    record = h.adapter.client.get(run_id)
    assert record.status == "completed", record.error
    assert record.nodes["reader"].output == hashlib.sha256(blob.encode()).hexdigest()
    assert record.context["report"] == blob[:200_000]
    objects = boto3.client("s3").list_objects_v2(Bucket=h.settings["FLOWCRAFT_PAYLOAD_BUCKET"])
    assert {o["Key"].split("/")[1] for o in objects["Contents"]} == {run_id}
    assert max(o["Size"] for o in objects["Contents"]) > 18 * 1024 * 1024


def test_context_and_coordination_stores(aws: Any) -> None:
    h = AwsHarness()
    run_id, _ = h.adapter.client.start("if_else", {"a": 1.5})
    context = DynamoDbContext(h.settings["FLOWCRAFT_CONTEXT_TABLE"], run_id)

    async def use_context() -> dict[str, Any]:
        await context.set("b", {"nested": [1, 2]})
        assert await context.get("a") == 1.5
        assert await context.has("b") and not await context.has("zzz")
        await context.delete("a")
        return await context.to_dict()

    assert asyncio.run(use_context()) == {"b": {"nested": [1, 2]}}

    now = [1000.0]
    store = DynamoDbCoordinationStore(
        h.settings["FLOWCRAFT_COORDINATION_TABLE"], clock=lambda: now[0]
    )
    assert store.set_if_not_exist("lock", "me", 60)
    assert not store.set_if_not_exist("lock", "you", 60)
    assert store.increment("count", 60) == 1 and store.increment("count", 60) == 2
    now[0] += 120  # expired, though TTL has not deleted anything
    assert store.get("lock") is None
    assert store.set_if_not_exist("lock", "you", 60)
    assert store.increment("count", 60) == 1
    assert store.extend_ttl("lock", 300) and not store.extend_ttl("missing", 300)
    store.delete("lock")
    assert store.get("lock") is None


def test_reconciler_cost_follows_stalled_runs_not_table_size(aws: Any) -> None:
    """The AWS requests of a reconciler pass depend on the stalled runs, not on finished ones."""
    h = AwsHarness()

    def pass_cost(finished: int, stalled: int, tag: str) -> int:
        for i in range(finished):
            h.adapter.client.start("if_else", run_id=f"{tag}-done-{i}")
        h.pump()
        for i in range(stalled):
            h.adapter.client.start("if_else", run_id=f"{tag}-stalled-{i}")
        h.discard_queued()  # their start jobs are lost
        before = h.calls
        stats = h.reconcile(threshold=0)
        assert stats.stalled_runs == stalled
        cost = h.calls - before
        h.pump()
        return cost

    small = pass_cost(finished=2, stalled=1, tag="a")
    large = pass_cost(finished=20, stalled=1, tag="b")
    assert large == small
    two = pass_cost(finished=0, stalled=2, tag="c")
    assert two > small


def test_crash_after_every_aws_call_of_a_wait_and_its_resume(aws: Any) -> None:
    """A human approval: start, park, resume through the client, finish, with a crash after
    each AWS call in turn (of the worker and of the resume itself)."""
    h = AwsHarness()

    def approve(run_id: str) -> None:
        try:
            h.adapter.client.resume(run_id, node_id="approve", action="yes", output={"ok": 1})
        except Crash:
            with contextlib.suppress(RunConflict):  # the caller retries; it may have landed
                h.adapter.client.resume(run_id, node_id="approve", action="yes", output={"ok": 1})

    h.calls = 0
    h.adapter.client.start("approval", run_id="approval-clean")
    h.pump()
    approve("approval-clean")
    h.pump()
    total = h.calls
    assert h.adapter.client.get("approval-clean").status == "completed"
    for k in range(1, total + 1):
        run_id = f"approval-crash-{k}"
        h.calls = 0
        h.crash_at = k
        try:
            h.adapter.client.start("approval", run_id=run_id)
        except Crash:
            h.adapter.client.start("approval", run_id=run_id)
        h.pump()
        for _ in range(3):
            with h.unobserved():
                if h.adapter.client.get(run_id).status == "awaiting":
                    break
            h.reconcile(threshold=0)
            h.pump()
        approve(run_id)
        h.pump()
        h.crash_at = None
        for _ in range(4):
            if h.adapter.client.get(run_id).final:
                break
            h.reconcile(threshold=0)
            h.pump()
        view = h.adapter.client.get(run_id).to_api()
        assert view["status"] == "completed", (k, view)
        assert view["outputs"]["ship"] == {"ok": 1}, k
        assert view["nodes"]["refund"] == "skipped", k
