"""Drive the boto3 implementation over the moto server like Lambda's event source would."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import boto3

from flowcraft_core.aws import SqsAdapter, create_sqs_reconciler
from flowcraft_core.aws.clients import reset_clients
from local.provision import provision

from .scenarios import BLUEPRINTS, REGISTRY


class Crash(Exception):
    """The worker 'dies' right after an AWS call."""


class AwsHarness:
    def __init__(
        self,
        prefix: str = "t",
        blueprints: dict[str, Any] | None = None,
        registry: dict[str, Any] | None = None,
        **adapter_options: Any,
    ) -> None:
        self.settings = provision(prefix)
        reset_clients()
        self.adapter = SqsAdapter(
            blueprints=blueprints or BLUEPRINTS,
            registry=registry or REGISTRY,
            queue_url=self.settings["FLOWCRAFT_QUEUE_URL"],
            context_table=self.settings["FLOWCRAFT_CONTEXT_TABLE"],
            status_table=self.settings["FLOWCRAFT_STATUS_TABLE"],
            coordination_table=self.settings["FLOWCRAFT_COORDINATION_TABLE"],
            payload_bucket=self.settings["FLOWCRAFT_PAYLOAD_BUCKET"],
            **adapter_options,
        )
        self.sqs = boto3.client("sqs")  # the event source's own client (not counted)
        self.queue_url = self.settings["FLOWCRAFT_QUEUE_URL"]
        self.calls = 0
        self.crash_at: int | None = None
        self._paused = False
        payloads = self.adapter.runs.codec.payloads
        observed = [self.adapter.runs.items.client, self.adapter.queue.client]  # type: ignore[attr-defined]
        observed.append(payloads.client)  # type: ignore[union-attr]
        for client in {id(c): c for c in observed}.values():
            client.meta.events.register("after-call.*.*", self._after_call)

    @contextlib.contextmanager
    def unobserved(self) -> Iterator[None]:
        """The test's own reads: neither counted nor crashed."""
        self._paused = True
        try:
            yield
        finally:
            self._paused = False

    def _after_call(self, **_: Any) -> None:
        if self._paused:
            return
        self.calls += 1
        if self.crash_at is not None and self.calls == self.crash_at:
            raise Crash(f"crash after AWS call {self.calls}")

    def pump(
        self, *, max_batches: int = 500, on_message: Callable[[dict[str, Any]], None] | None = None
    ) -> int:
        """Deliver messages until the queue is empty; crashed jobs become visible again."""
        handled = 0
        loop = asyncio.new_event_loop()
        try:
            for _ in range(max_batches):
                response = self.sqs.receive_message(
                    QueueUrl=self.queue_url,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=0,
                    VisibilityTimeout=30,
                )
                messages = response.get("Messages", [])
                if not messages:
                    break
                done = []
                for message in messages:
                    if on_message is not None:
                        on_message(message)
                    try:
                        loop.run_until_complete(self.adapter.handle_message(message["Body"]))
                        done.append(message)
                    except Crash:
                        self.sqs.change_message_visibility(
                            QueueUrl=self.queue_url,
                            ReceiptHandle=message["ReceiptHandle"],
                            VisibilityTimeout=0,
                        )
                    handled += 1
                if done:
                    self.sqs.delete_message_batch(
                        QueueUrl=self.queue_url,
                        Entries=[
                            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                            for i, m in enumerate(done)
                        ],
                    )
        finally:
            loop.close()
        return handled

    def crash_after_each_call(
        self, blueprint_id: str, context: dict[str, Any]
    ) -> Iterator[tuple[int, str]]:
        """Run the blueprint once cleanly to count its AWS calls; then once per call k, dying
        right after call k, redelivering, and running the reconciler until the run is final.
        Yields (k, run id) for the caller to check each run."""
        self.calls = 0
        clean, _ = self.adapter.client.start(blueprint_id, context, run_id=f"{blueprint_id}-clean")
        self.pump()
        total = self.calls
        assert self.adapter.client.get(clean).final and total > 5
        for k in range(1, total + 1):
            run_id = f"{blueprint_id}-crash-{k}"
            self.calls = 0
            self.crash_at = k
            try:
                self.adapter.client.start(blueprint_id, context, run_id=run_id)
            except Crash:  # the caller retries: start is idempotent
                self.adapter.client.start(blueprint_id, context, run_id=run_id)
            self.pump()
            self.crash_at = None
            for _ in range(4):
                if self.adapter.client.get(run_id).final:
                    break
                self.reconcile(threshold=0)
                self.pump()
            yield k, run_id

    def discard_queued(self) -> int:
        """Lose every queued job (as if they had been consumed by a worker that then died)."""
        lost = 0
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            ).get("Messages", [])
            if not messages:
                return lost
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ],
            )
            lost += len(messages)

    def reconcile(self, threshold: float = 0) -> Any:
        return create_sqs_reconciler(self.adapter, stalled_threshold_seconds=threshold).run()
