"""Runs of any size: a node's commit costs what the node writes, never what its run holds.

With the in-memory item store, which bills every write and read by DynamoDB's rules, these
tests check what a user relies on: write units per node stay flat as a fan-out grows, no item
grows with the run, a long chain of large outputs runs to the end, a wide ``any`` join fires
once, a map over thousands of items keeps its concurrency and its order, and a large run reads
back page by page.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from flowcraft_core.distributed.items import whole_item_size

from .distributed_harness import Harness
from .scenarios import REGISTRY, node
from .scenarios import bp as scenario_bp


def fan(width: int, join: str = "all") -> dict[str, Any]:
    nodes = [
        {"id": "s", "uses": "value", "params": {"value": 1}},
        {"id": "j", "uses": "count_inputs", "config": {"joinStrategy": join}},
    ]
    nodes += [{"id": f"w{i}", "uses": "echo"} for i in range(width)]
    edges = [{"source": "s", "target": f"w{i}"} for i in range(width)]
    edges += [{"source": f"w{i}", "target": "j"} for i in range(width)]
    return {"id": f"fan{width}{join}", "nodes": nodes, "edges": edges}


def count_inputs(ctx: Any) -> dict[str, Any]:
    return {"output": len(ctx.input) if isinstance(ctx.input, dict) else ctx.input}


REG = {**REGISTRY, "count_inputs": count_inputs}


def run(h: Harness, blueprint_id: str, context: dict[str, Any] | None = None) -> str:
    run_id, _ = h.client.start(blueprint_id, context or {})
    h.drain(limit=100_000)
    return run_id


def test_write_units_per_node_stay_flat_from_a_fan_out_of_20_to_one_of_600() -> None:
    per_node = {}
    for width in (20, 600):
        bp = fan(width)
        h = Harness(blueprints={bp["id"]: bp}, registry=REG)
        run_id = run(h, bp["id"])
        record = h.client.get(run_id)
        assert record.status == "completed", record.error
        assert record.nodes["j"].output == width
        per_node[width] = h.items.write_units / h.worker.stats.nodes_executed
        # No item of the run grows with it: the widest join's items are split in buckets.
        assert max(whole_item_size(i) for i in h.items.items.values()) < 2_000
    assert per_node[600] <= 1.5 * per_node[20], per_node
    assert per_node[600] <= 3, per_node


def test_a_chain_of_large_outputs_runs_past_where_one_item_per_run_would_stop() -> None:
    def report(ctx: Any) -> dict[str, Any]:
        # ~1 KB of fresh text per node: the run as a whole holds far more than 400 KB.
        return {"output": {"n": ctx.node_id, "text": f"{ctx.node_id} " * 180}}

    nodes = [{"id": f"n{i}", "uses": "report"} for i in range(450)]
    edges = [{"source": f"n{i}", "target": f"n{i + 1}"} for i in range(449)]
    bp = {"id": "long", "nodes": nodes, "edges": edges}
    h = Harness(blueprints={"long": bp}, registry={"report": report})
    run_id = run(h, "long")
    assert h.client.head(run_id).status == "completed"
    stored = sum(whole_item_size(i) for i in h.items.items.values())
    assert stored > 400_000  # what used to be one item, over DynamoDB's limit
    assert max(whole_item_size(i) for i in h.items.items.values()) < 2_000
    # About one durable write per node (plus the run's start and end).
    assert h.items.write_units <= 1.1 * 450 + 6


@pytest.mark.parametrize("join", ["all", "any"])
def test_wide_joins_split_in_buckets_fire_once_and_the_run_ends(join: str) -> None:
    bp = fan(23, join)
    h = Harness(blueprints={bp["id"]: bp}, registry=REG, bucket_size=4)
    run_id = run(h, bp["id"])
    record = h.client.get(run_id)
    assert record.status == "completed", record.error
    if join == "any":  # sent at most once (or run inline by the arrival that fired it)
        assert [j.node_id for j in h.delivered].count("j") <= 1
    assert record.nodes["j"].output == (23 if join == "all" else 1)
    # The join's arrivals: 6 buckets of at most 4 and the top item that counts full buckets.
    join_items = [k for k in h.items.items if "#j#j" in k]
    assert len(join_items) == 7, join_items


def test_wide_any_join_fires_once_under_duplicates_and_reordering() -> None:
    import random

    bp = fan(30, "any")
    h = Harness(blueprints={bp["id"]: bp}, registry=REG, bucket_size=4)
    run_id, _ = h.client.start(bp["id"])
    h.drain(duplicate=True, shuffle=random.Random(5))
    record = h.client.get(run_id)
    assert record.status == "completed"
    assert record.nodes["j"].attempts == 1 and record.nodes["j"].output == 1


def test_a_map_over_thousands_of_items_honours_concurrency_and_keeps_order() -> None:
    params = {"items": "context.xs", "uses": "square", "concurrency": 7}
    bp = scenario_bp([node("m", "map", params=params)], id="big_map")
    h = Harness(blueprints={"big_map": bp})
    run_id, _ = h.client.start("big_map", {"xs": list(range(3000))})
    peak = 0
    while h.queue.sent:
        peak = max(peak, sum(1 for job, _ in h.queue.sent if job.item is not None))
        for job in h.queue.drain():
            asyncio.run(h.worker.handle_job(job))
    assert peak == 7  # seven lanes in flight, never more
    record = h.client.get(run_id)
    assert record.status == "completed"
    assert record.nodes["m"].output == [x * x for x in range(3000)]
    # Items live in chunks of 100; no item of the run holds the whole list.
    assert max(whole_item_size(i) for i in h.items.items.values()) < 64 * 1024


def test_a_large_run_reads_back_page_by_page_and_its_view_stays_small() -> None:
    bp = fan(450)
    h = Harness(blueprints={bp["id"]: bp}, registry=REG)
    run_id = run(h, bp["id"])
    view = h.client.view(run_id)
    assert view["status"] == "completed" and "nodes" not in view
    assert view["summary"]["nodes"] == 452
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        page = h.client.nodes(run_id, limit=100, next_token=token)
        pages += 1
        seen += [item["instance"] for item in page["items"]]
        token = page.get("nextToken")
        if token is None:
            break
    assert pages == 5 and len(seen) == 452 == len(set(seen))
    with pytest.raises(ValueError, match="nextToken"):
        h.client.nodes(run_id, next_token="not-a-token")


def test_loop_passes_are_listed_in_turn_on_the_node_pages() -> None:
    h = Harness()
    run_id = run(h, "loop", {"count": 0})
    instances = [i["instance"] for i in h.client.nodes(run_id, limit=3)["items"]]
    token = h.client.nodes(run_id, limit=3).get("nextToken")
    rest = h.client.nodes(run_id, limit=50, next_token=token)["items"]
    everything = instances + [i["instance"] for i in rest]
    assert everything[:3] == ["init", "loop", "loop#1"]
    assert set(everything) == set(h.client.get(run_id).nodes)


def test_a_large_start_context_stays_out_of_the_head_every_node_reads() -> None:
    bp = {
        "id": "reads_xs",
        "nodes": [{"id": "total", "uses": "total"}, {"id": "next", "uses": "echo"}],
        "edges": [{"source": "total", "target": "next"}],
    }

    async def total(ctx: Any) -> dict[str, Any]:
        return {"output": sum(await ctx.context.get("xs"))}

    h = Harness(blueprints={"reads_xs": bp}, registry={**REGISTRY, "total": total})
    run_id, _ = h.client.start("reads_xs", {"xs": list(range(20_000)), "small": 1})
    assert whole_item_size(h.items.items[run_id]) < 1_000  # the head every node reads
    h.drain()
    record = h.client.get(run_id)
    assert record.nodes["next"].output == sum(range(20_000))
    assert record.context["xs"] == list(range(20_000)) and record.context["small"] == 1


def test_the_run_view_shows_running_retrying_and_sleeping_nodes() -> None:
    h = Harness()
    run_id, _ = h.client.start("mixed")
    [start] = h.queue.drain()
    asyncio.run(h.worker.handle_job(start))  # 'start' done; a, b, c sent, not yet run
    nodes = h.client.view(run_id)["nodes"]
    assert nodes["start"] == "completed" and nodes["a"] == nodes["b"] == "running"
    jobs = h.queue.drain()
    for job in jobs:
        asyncio.run(h.worker.handle_job(job))  # b (flaky) fails its first attempt
    view = h.client.view(run_id)
    assert view["nodes"]["b"] == "retrying"
    retry = next(t for t in view["timeline"] if t["node"] == "b")
    assert retry["nextAttemptAt"].endswith("Z") and view["createdAt"].endswith("Z")


def test_a_lane_reads_each_chunk_of_items_once_per_invocation() -> None:
    params = {"items": "context.xs", "uses": "square", "concurrency": 1}
    bp = scenario_bp([node("m", "map", params=params)], id="one_lane")
    h = Harness(blueprints={"one_lane": bp})
    chunk_reads = [0]
    get_many = h.items.get_many

    def counting(keys: Any) -> Any:
        chunk_reads[0] += sum(1 for key in keys if "#c" in key)
        return get_many(keys)

    h.items.get_many = counting  # type: ignore[method-assign]
    run_id, _ = h.client.start("one_lane", {"xs": list(range(200))})
    h.drain()
    record = h.client.get(run_id)
    assert record.status == "completed"
    assert record.nodes["m"].output == [x * x for x in range(200)]
    # 200 items in one lane, 25 per invocation: 8 invocations, not 200 chunk reads.
    assert chunk_reads[0] <= 200 // h.worker.max_chain + 1
