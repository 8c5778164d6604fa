"""Distributed cost per executed node, and how it grows with the run: requests, units, CPU, $.

Each shape runs twice:

* through the boto3 driver against a moto server (started here), jobs delivered the way
  Lambda's event source does (batches of 10, delete what succeeded), every SQS, DynamoDB and
  S3 request counted by operation with botocore's event hooks;
* through the same worker on in-memory stores, which bill each write and read by DynamoDB's
  rules (1 WRU per started KB of the larger of the item before and after, twice inside a
  transaction; 1 RRU per started 4 KB of a strongly consistent read) and time the handler's
  CPU without the emulator's latency.

Each family runs at a small and a large size (a chain of 10 to 10,000 nodes, a fan-out of 10
to 2,000, a map of 100 to 10,000 items), and the last lines say how the per-node figures grow.
Prints figures; never passes or fails. ``--shapes chain10,fan10`` runs a subset.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# List prices (us-east-1): SQS per request, DynamoDB on-demand per unit, S3, Lambda arm64.
SQS_PER_REQUEST = 0.40 / 1e6
DDB_PER_WRU = 0.625 / 1e6
DDB_PER_RRU = 0.125 / 1e6
S3_PER_PUT = 5.0 / 1e6
S3_PER_GET = 0.4 / 1e6
LAMBDA_PER_REQUEST = 0.20 / 1e6
LAMBDA_PER_GB_SECOND = 0.0000133334
LAMBDA_GB = 0.25
BATCH = 10
#: Typical in-region latency of one DynamoDB/SQS/S3 call from Lambda (assumption, not measured).
AWS_CALL_LATENCY_S = 0.006

WORDS = [
    "order",
    "shipped",
    "invoice",
    "customer",
    "payment",
    "refund",
    "warehouse",
    "parcel",
    "address",
    "pending",
    "approved",
    "summary",
    "total",
    "quantity",
    "discount",
    "priority",
    "routing",
    "carrier",
    "delivered",
    "returned",
]


def step(ctx: Any) -> dict[str, Any]:
    return {"output": {"ok": True}}


def report(ctx: Any) -> dict[str, Any]:
    """A ~10 KB JSON output, like an LLM or ETL step's: records with repeated keys and text."""
    rng = random.Random(zlib.crc32(ctx.node_id.encode()))  # the same rows on every run
    rows = [
        {
            "id": f"{ctx.node_id}-{i}",
            "sku": f"SKU-{rng.randrange(10**6):06d}",
            "qty": rng.randrange(1, 9),
            "price": round(rng.uniform(1, 500), 2),
            "note": " ".join(rng.choice(WORDS) for _ in range(12)),
        }
        for i in range(56)
    ]
    return {"output": {"node": ctx.node_id, "rows": rows}}


def chain(n: int, uses: str = "step", name: str = "chain") -> dict[str, Any]:
    return {
        "id": name,
        "nodes": [{"id": f"n{i}", "uses": uses} for i in range(n)],
        "edges": [{"source": f"n{i}", "target": f"n{i + 1}"} for i in range(n - 1)],
    }


def fan(width: int) -> dict[str, Any]:
    nodes = [{"id": "s", "uses": "step"}, {"id": "j", "uses": "step"}]
    nodes += [{"id": f"w{i}", "uses": "step"} for i in range(width)]
    edges = [{"source": "s", "target": f"w{i}"} for i in range(width)]
    edges += [{"source": f"w{i}", "target": "j"} for i in range(width)]
    return {"id": f"fan{width}", "nodes": nodes, "edges": edges}


def map_over(count: int) -> tuple[dict[str, Any], dict[str, Any]]:
    bp = {
        "id": f"map{count}",
        "nodes": [
            {
                "id": "m",
                "uses": "map",
                "params": {"items": "context.xs", "uses": "square", "concurrency": 50},
            }
        ],
    }
    return bp, {"xs": list(range(count))}


def shapes() -> dict[str, tuple[dict[str, Any], dict[str, Any], str]]:
    from tests.scenarios import MIXED

    found: dict[str, tuple[dict[str, Any], dict[str, Any], str]] = {
        "chain10": (chain(10, name="chain10"), {}, "10-node chain"),
        "chain500x10KB": (
            chain(500, "report", "chain500x10KB"),
            {},
            "500-node chain, 10 KB outputs",
        ),
        "chain2000": (chain(2000, name="chain2000"), {}, "2,000-node chain"),
        "chain10000": (chain(10_000, name="chain10000"), {}, "10,000-node chain"),
        "fan10": (fan(10), {}, "fan-out/in of 10"),
        "fan500": (fan(500), {}, "fan-out/in of 500"),
        "fan2000": (fan(2000), {}, "fan-out/in of 2,000"),
        "mixed": (MIXED, {}, "mixed (fan-out, all + any joins, condition, retry)"),
    }
    for count in (100, 10_000):
        bp, context = map_over(count)
        found[f"map{count}"] = (bp, context, f"map over {count:,} items (concurrency 50)")
    return found


REGISTRY_EXTRA = {"step": step, "report": report}


def run_on_moto(
    selected: list[str], table: dict[str, tuple[dict[str, Any], dict[str, Any], str]]
) -> dict[str, dict[str, Any]]:
    import logging

    from local.aws_calls import AwsCallCounter
    from local.emulator import Emulator
    from local.provision import provision

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    emulator = Emulator.start()
    os.environ.update(emulator.environment())
    import boto3

    counter = AwsCallCounter().install()  # before any client exists, so every client counts

    from flowcraft_core.aws import SqsAdapter
    from tests.scenarios import REGISTRY

    registry = {**REGISTRY, **REGISTRY_EXTRA}
    settings = provision("bench")
    adapter = SqsAdapter(
        blueprints={name: table[name][0] for name in selected},
        registry=registry,
        queue_url=settings["FLOWCRAFT_QUEUE_URL"],
        context_table=settings["FLOWCRAFT_CONTEXT_TABLE"],
        status_table=settings["FLOWCRAFT_STATUS_TABLE"],
        coordination_table=settings["FLOWCRAFT_COORDINATION_TABLE"],
        payload_bucket=settings["FLOWCRAFT_PAYLOAD_BUCKET"],
    )
    sqs = boto3.client("sqs")
    queue_url = settings["FLOWCRAFT_QUEUE_URL"]
    results: dict[str, dict[str, Any]] = {}
    for name in selected:
        _, context, _ = table[name]
        before = counter.snapshot()
        executed_before = adapter.worker.stats.nodes_executed
        started = time.perf_counter()
        run_id, _ = adapter.client.start(name, context)
        loop = asyncio.new_event_loop()
        while True:
            messages = sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=BATCH, WaitTimeSeconds=0
            ).get("Messages", [])
            if not messages:
                break
            for message in messages:
                loop.run_until_complete(adapter.handle_message(message["Body"]))
            sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ],
            )
        loop.close()
        elapsed = time.perf_counter() - started
        counts = counter.since(before)
        head = adapter.client.head(run_id)
        assert head.status == "completed", (name, head.status, head.error)
        executed = adapter.worker.stats.nodes_executed - executed_before
        results[name] = {"executed": executed, "counts": counts, "elapsed": elapsed}
    counter.uninstall()
    emulator.stop()
    return results


class CountingStatuses:
    """The in-memory status store, counting its writes (each ~1 WRU: status rows are small)."""

    def __init__(self) -> None:
        from flowcraft_core.distributed import InMemoryStatusStore

        self.inner = InMemoryStatusStore()
        self.writes = 0

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if name in ("started", "changed", "heartbeat"):

            def counted(*args: Any, **kwargs: Any) -> Any:
                self.writes += 1
                return attribute(*args, **kwargs)

            return counted
        return attribute


def run_in_memory(
    name: str, table: dict[str, tuple[dict[str, Any], dict[str, Any], str]]
) -> dict[str, Any]:
    from flowcraft_core.distributed import (
        InMemoryItemStore,
        InMemoryJobQueue,
        InMemoryPayloadStore,
        ValueCodec,
        Worker,
        WorkflowClient,
    )
    from flowcraft_core.distributed.items import whole_item_size
    from flowcraft_core.distributed.state import RunItems
    from tests.scenarios import REGISTRY

    bp, context, _ = table[name]
    items, payloads = InMemoryItemStore(), InMemoryPayloadStore()
    runs = RunItems(items, ValueCodec(payloads=payloads))
    statuses, queue = CountingStatuses(), InMemoryJobQueue()
    worker = Worker(
        runs=runs,
        statuses=statuses,  # type: ignore[arg-type]
        queue=queue,
        blueprints={name: bp},
        registry={**REGISTRY, **REGISTRY_EXTRA},
    )
    client = WorkflowClient(runs=runs, statuses=statuses, queue=queue, blueprints={name: bp})  # type: ignore[arg-type]
    units_before = (items.write_units, items.read_units)  # the start is part of the run
    client.start(name, context)
    cpu = time.process_time()
    loop = asyncio.new_event_loop()
    while queue.sent:
        for job in queue.drain():
            loop.run_until_complete(worker.handle_job(job))
    cpu = time.process_time() - cpu
    loop.close()
    executed = worker.stats.nodes_executed
    return {
        "executed": executed,
        "wru": items.write_units - units_before[0] + statuses.writes,
        "rru": items.read_units - units_before[1],
        "cpu": cpu / executed,
        "largest_item": max(len(k) + whole_item_size(v) for k, v in items.items.items()),
    }


#: (small, large) shape of each family whose per-node cost should not grow with the run.
FAMILIES = [("chain10", "chain10000"), ("fan10", "fan2000"), ("map100", "map10000")]


def print_growth(per_node: dict[str, tuple[float, float, float, float]]) -> None:
    """Per-node figures of each family's largest shape over its smallest (1.00x: flat)."""
    for small, large in FAMILIES:
        if small in per_node and large in per_node:
            pairs = zip(per_node[small], per_node[large], strict=True)
            ratios = [b / a if a else float("nan") for a, b in pairs]
            print(
                f"growth {small} -> {large} per node: requests {ratios[0]:.2f}x, "
                f"WRU {ratios[1]:.2f}x, RRU {ratios[2]:.2f}x, worker CPU {ratios[3]:.2f}x"
            )


def main() -> None:
    table = shapes()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shapes", default=",".join(table), help="comma-separated shape names")
    args = parser.parse_args()
    selected = [s for s in args.shapes.split(",") if s]
    print("Flowcraft distributed cost per executed node (moto server, Lambda-like delivery)\n")
    measured = run_on_moto(selected, table)
    rows = []
    per_node: dict[str, tuple[float, float, float, float]] = {}
    for name in selected:
        wire = measured[name]
        units = run_in_memory(name, table)
        executed = wire["executed"]
        counts: Counter[tuple[str, str]] = wire["counts"]
        total = sum(counts.values())
        sqs_requests = sum(n for (s, _), n in counts.items() if s == "sqs")
        s3_puts = sum(n for (s, o), n in counts.items() if s == "s3" and o == "PutObject")
        s3_gets = sum(n for (s, o), n in counts.items() if s == "s3" and o == "GetObject")
        wru = units["wru"] / units["executed"]
        rru = units["rru"] / units["executed"]
        lambda_seconds = units["cpu"] + AWS_CALL_LATENCY_S * (total / executed)
        dollars = (
            sqs_requests / executed * SQS_PER_REQUEST
            + wru * DDB_PER_WRU
            + rru * DDB_PER_RRU
            + s3_puts / executed * S3_PER_PUT
            + s3_gets / executed * S3_PER_GET
            + LAMBDA_PER_REQUEST / BATCH
            + lambda_seconds * LAMBDA_GB * LAMBDA_PER_GB_SECOND
        ) * 1e6
        print(
            f"== {table[name][2]}: {executed} nodes executed, {total} AWS requests "
            f"({total / executed:.2f} per node), {executed / wire['elapsed']:.0f} nodes/s "
            "through the emulator"
        )
        for (service, operation), n in counts.most_common():
            print(f"   {service + '.' + operation:<32}{n:>7}  {n / executed:>6.3f}/node")
        print(
            f"   DynamoDB per node: {wru:.2f} WRU, {rru:.2f} RRU; worker CPU {units['cpu'] * 1e3:.2f} ms; "
            f"largest item {units['largest_item'] / 1024:.1f} KB; ${dollars:.2f} per million nodes\n"
        )
        rows.append((table[name][2], total / executed, wru, rru, units["cpu"] * 1e3, dollars))
        per_node[name] = (total / executed, wru, rru, units["cpu"] * 1e3)
    print(
        "| workflow | requests per node | WRU per node | RRU per node | worker CPU per node | $ per million nodes |"
    )
    print("|---|---|---|---|---|---|")
    for label, requests, wru, rru, cpu, dollars in rows:
        print(
            f"| {label} | {requests:.2f} | {wru:.2f} | {rru:.2f} | {cpu:.2f} ms | {dollars:.2f} |"
        )
    print_growth(per_node)
    print(
        f"\nDollars at list prices: SQS $0.40/M requests, DynamoDB $0.625/M WRU and $0.125/M RRU, "
        f"S3 $5/M PUT and $0.40/M GET, Lambda arm64 $0.20/M requests ({BATCH} jobs per batch) "
        f"plus 256 MB x (CPU + {AWS_CALL_LATENCY_S * 1000:.0f} ms per AWS request). "
        "Step Functions Standard: $25 per million transitions."
    )


if __name__ == "__main__":
    main()
