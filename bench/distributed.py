"""Distributed cost: AWS requests, capacity units and dollars per executed node.

Runs real workflows through the boto3 driver against a moto server (started here), delivering
jobs the way Lambda's event source does (receive batches of 10, delete what succeeded), and
counts every request with botocore's event hooks. Prints figures; never passes or fails.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# List prices (us-east-1): SQS per request, DynamoDB on-demand per unit, Lambda arm64.
SQS_PER_REQUEST = 0.40 / 1e6
DDB_PER_WRU = 0.625 / 1e6
DDB_PER_RRU = 0.125 / 1e6
LAMBDA_PER_REQUEST = 0.20 / 1e6
LAMBDA_PER_GB_SECOND = 0.0000133334
LAMBDA_GB = 0.25
BATCH = 10
#: Typical in-region latency of one DynamoDB/SQS call from Lambda (assumption, not measured).
AWS_CALL_LATENCY_S = 0.006


def item_size(value: Any) -> int:
    """DynamoDB's size of a typed attribute value (AWS's published rules, approximately)."""
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        digits = len(inner.replace("-", "").replace(".", "").lstrip("0")) or 1
        return (digits + 1) // 2 + 1
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + 1 + item_size(v) for k, v in inner.items())
    if kind == "L":
        return 3 + sum(1 + item_size(v) for v in inner)
    return len(json.dumps(inner))


def chain(n: int) -> dict[str, Any]:
    return {
        "id": "chain20",
        "nodes": [{"id": f"n{i}", "uses": "step"} for i in range(n)],
        "edges": [{"source": f"n{i}", "target": f"n{i + 1}"} for i in range(n - 1)],
    }


def fan(width: int) -> dict[str, Any]:
    nodes = [{"id": "s", "uses": "step"}, {"id": "j", "uses": "step"}]
    nodes += [{"id": f"w{i}", "uses": "step"} for i in range(width)]
    edges = [{"source": "s", "target": f"w{i}"} for i in range(width)]
    edges += [{"source": f"w{i}", "target": "j"} for i in range(width)]
    return {"id": "fan50", "nodes": nodes, "edges": edges}


def main() -> None:
    import logging

    from local.aws_calls import AwsCallCounter
    from local.emulator import Emulator
    from local.provision import provision

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    emulator = Emulator.start()
    os.environ.update(emulator.environment())
    import boto3

    counter = AwsCallCounter().install()  # before any client exists, so every client counts
    wire = {"sent": 0, "received": 0}

    def on_send(request: Any = None, **_: Any) -> None:
        body = getattr(request, "body", None) or b""
        wire["sent"] += len(body)

    def on_response(response_dict: Any = None, **_: Any) -> None:
        wire["received"] += len((response_dict or {}).get("body") or b"")

    boto3.DEFAULT_SESSION.events.register("before-send", on_send)  # type: ignore[union-attr]
    boto3.DEFAULT_SESSION.events.register("response-received", on_response)  # type: ignore[union-attr]

    from flowcraft_core import NodeContext, NodeResult
    from flowcraft_core.aws import SqsAdapter
    from flowcraft_core.distributed import (
        InMemoryJobQueue,
        InMemoryRunStore,
        InMemoryStatusStore,
        Worker,
        WorkflowClient,
    )
    from tests.scenarios import MIXED, REGISTRY

    def step(ctx: NodeContext) -> NodeResult:
        return NodeResult(output={"ok": True})

    registry = {**REGISTRY, "step": step}
    blueprints = {"chain20": chain(20), "fan50": fan(50), "mixed": MIXED}
    settings = provision("bench")
    adapter = SqsAdapter(
        blueprints=blueprints,
        registry=registry,
        queue_url=settings["FLOWCRAFT_QUEUE_URL"],
        context_table=settings["FLOWCRAFT_CONTEXT_TABLE"],
        status_table=settings["FLOWCRAFT_STATUS_TABLE"],
        coordination_table=settings["FLOWCRAFT_COORDINATION_TABLE"],
    )
    sqs = boto3.client("sqs")
    ddb = boto3.client("dynamodb")
    queue_url = settings["FLOWCRAFT_QUEUE_URL"]
    print("Flowcraft distributed cost per executed node (moto server, Lambda-like delivery)\n")
    rows = []
    for blueprint_id in ("chain20", "fan50", "mixed"):
        before = counter.snapshot()
        bytes_before = dict(wire)
        stats_before = adapter.worker.stats.nodes_executed
        started = time.perf_counter()
        run_id, _ = adapter.client.start(blueprint_id, {})
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
        record = adapter.client.get(run_id)
        assert record.status == "completed", (blueprint_id, record.status, record.error)
        executed = adapter.worker.stats.nodes_executed - stats_before
        item = ddb.get_item(
            TableName=settings["FLOWCRAFT_CONTEXT_TABLE"], Key={"runId": {"S": run_id}}
        )["Item"]
        final_kb = sum(len(k) + item_size(v) for k, v in item.items()) / 1024
        sent = wire["sent"] - bytes_before["sent"]
        received = wire["received"] - bytes_before["received"]
        rows.append((blueprint_id, executed, counts, elapsed, final_kb, sent, received))
    counter.uninstall()

    # Handler CPU per node, without the emulator's latency: the same worker on in-memory stores.
    runs, statuses, queue = InMemoryRunStore(), InMemoryStatusStore(), InMemoryJobQueue()
    worker = Worker(
        runs=runs, statuses=statuses, queue=queue, blueprints=blueprints, registry=registry
    )
    client = WorkflowClient(runs=runs, statuses=statuses, queue=queue, blueprints=blueprints)
    cpu_start = time.perf_counter()
    cpu_nodes = 0
    for _ in range(20):
        client.start("mixed")
        while queue.sent:
            for job in queue.drain():
                asyncio.run(worker.handle_job(job))
    cpu_nodes = worker.stats.nodes_executed
    cpu_per_node = (time.perf_counter() - cpu_start) / cpu_nodes

    for blueprint_id, executed, counts, elapsed, final_kb, sent, received in rows:
        total = sum(counts.values())
        print(
            f"== {blueprint_id}: {executed} nodes executed, {total} AWS requests "
            f"({total / executed:.2f} per node), final run item {final_kb:.1f} KB "
            f"(DynamoDB size); {sent / executed / 1024:.1f} KB sent and "
            f"{received / executed / 1024:.1f} KB received per node"
        )
        for (service, operation), n in counts.most_common():
            print(f"   {service + '.' + operation:<32}{n:>5}  {n / executed:>6.2f}/node")
        sqs_requests = sum(n for (s, _), n in counts.items() if s == "sqs")
        reads = sum(
            n for (s, o), n in counts.items() if s == "dynamodb" and o in {"GetItem", "Query"}
        )
        writes = sum(
            n
            for (s, o), n in counts.items()
            if s == "dynamodb" and o in {"PutItem", "UpdateItem", "DeleteItem"}
        )
        # A write costs 1 WRU per KB of the item (the larger of before and after), a strongly
        # consistent read 1 RRU per 4 KB. The run item grows during the run: charge each request
        # for the item's average size, from empty to final.
        average_kb = final_kb / 2
        wru = writes * max(1, math.ceil(average_kb))
        rru = reads * max(1, math.ceil(average_kb / 4))
        lambda_seconds = cpu_per_node + AWS_CALL_LATENCY_S * (total / executed)
        dollars = (
            sqs_requests / executed * SQS_PER_REQUEST
            + wru / executed * DDB_PER_WRU
            + rru / executed * DDB_PER_RRU
            + LAMBDA_PER_REQUEST / BATCH
            + lambda_seconds * LAMBDA_GB * LAMBDA_PER_GB_SECOND
        ) * 1e6
        billed = total  # every SQS and DynamoDB request is billed
        print(f"   billed requests per node: {billed / executed:.2f} (target <= 4)")
        print(
            f"   DynamoDB units per node: {wru / executed:.2f} WRU, {rru / executed:.2f} RRU (estimated from item size)"
        )
        print(
            f"   throughput through the emulator: {executed / elapsed:.0f} nodes/s at {total / elapsed:.0f} requests/s"
        )
        print(
            f"   cost per million node executions: ${dollars:.2f} (target < $2; Step Functions Standard $25)\n"
        )
    print(
        f"handler CPU per node (in-memory stores): {cpu_per_node * 1e6:.0f} µs; Lambda duration modelled as "
        f"CPU + {AWS_CALL_LATENCY_S * 1000:.0f} ms per AWS request, 256 MB arm64, {BATCH} jobs per batch"
    )
    emulator.stop()


if __name__ == "__main__":
    main()
