"""Drive the distributed protocol with in-memory stores (deterministic, no AWS)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from flowcraft_core.distributed import (
    InMemoryItemStore,
    InMemoryJobQueue,
    InMemoryPayloadStore,
    InMemoryStatusStore,
    Job,
    Reconciler,
    ValueCodec,
    Worker,
    WorkflowClient,
)
from flowcraft_core.distributed.state import RunItems
from flowcraft_core.testing import FakeClock

from .scenarios import BLUEPRINTS, REGISTRY


class Harness:
    def __init__(
        self,
        blueprints: dict[str, Any] | None = None,
        registry: dict[str, Any] | None = None,
        *,
        codec: ValueCodec | None = None,
        bucket_size: int | None = None,
    ) -> None:
        self.clock = FakeClock()
        self.items = InMemoryItemStore()
        self.payloads = InMemoryPayloadStore()
        self.runs = RunItems(self.items, codec or ValueCodec(payloads=self.payloads))
        self.statuses = InMemoryStatusStore()
        self.queue = InMemoryJobQueue()
        self.bucket_size = bucket_size
        bps = blueprints or BLUEPRINTS
        self.worker = self.new_worker(bps, registry or REGISTRY)
        self.client = WorkflowClient(
            runs=self.runs,
            statuses=self.statuses,
            queue=self.queue,
            blueprints=bps,
            clock=self.clock,
        )
        self.delivered: list[Job] = []

    def new_worker(self, blueprints: dict[str, Any], registry: dict[str, Any]) -> Worker:
        extra: dict[str, Any] = {}
        if self.bucket_size is not None:
            extra["bucket_size"] = self.bucket_size
        return Worker(
            runs=self.runs,
            statuses=self.statuses,
            queue=self.queue,
            blueprints=blueprints,
            registry=registry,
            clock=self.clock,
            **extra,
        )

    def drain(
        self,
        *,
        duplicate: bool = False,
        shuffle: random.Random | None = None,
        workers: list[Worker] | None = None,
        limit: int = 10_000,
    ) -> None:
        pool = workers or [self.worker]
        turn = 0
        while self.queue.sent and limit > 0:
            # Delayed messages become visible later: let virtual time pass for them.
            longest = max(delay for _, delay in self.queue.sent)
            if longest:
                self.clock.advance(longest)
            jobs = self.queue.drain()
            if shuffle is not None:
                shuffle.shuffle(jobs)
            for job in jobs:
                copies = 2 if duplicate else 1
                for _ in range(copies):
                    worker = pool[turn % len(pool)]
                    turn += 1
                    self.delivered.append(job)
                    asyncio.run(worker.handle_job(job))
                    limit -= 1

    def reconciler(self, threshold: float = 0) -> Reconciler:
        return Reconciler(self.worker, statuses=self.statuses, stalled_threshold_seconds=threshold)
