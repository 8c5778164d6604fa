"""SqsAdapter and friends: the distributed driver wired to SQS and DynamoDB with boto3.

``SqsAdapter.handle_message`` is what the Lambda worker calls per record; ``start()``/``stop()``
run the same worker as a long-polling loop for EC2, ECS or Fargate users.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..blueprint import WorkflowBlueprint
from ..distributed.client import WorkflowClient
from ..distributed.errors import DeferJob
from ..distributed.job import Job
from ..distributed.layout import BUCKET
from ..distributed.parking import visibility_of
from ..distributed.payloads import DEFAULT_MAX_VALUE_BYTES, ValueCodec
from ..distributed.reconciler import Reconciler
from ..distributed.state import Retention, RunItems
from ..distributed.worker import Worker
from ..engine import Clock, Middleware
from ..nodes import Registry
from .clients import sqs_client
from .coordination import DynamoDbCoordinationStore
from .item_store import DynamoDbItemStore
from .job_queue import SqsJobQueue
from .payload_store import S3PayloadStore
from .schema import DEFAULT_RETENTION_DAYS, PAYLOAD_BUCKET
from .settings import AwsSettings
from .status_store import DynamoDbStatusStore


def run_items(
    context_table: str,
    payload_bucket: str | None = None,
    *,
    retention_days: float = DEFAULT_RETENTION_DAYS,
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
) -> RunItems:
    """A run's items on DynamoDB, with large values in the payload bucket (if one is set)."""
    codec = ValueCodec(
        payloads=S3PayloadStore(payload_bucket) if payload_bucket else None,
        max_bytes=max_value_bytes,
        key_prefix=PAYLOAD_BUCKET.key_prefix,
    )
    return RunItems(
        DynamoDbItemStore(context_table), codec, Retention(retention_days=retention_days)
    )


logger = logging.getLogger("flowcraft.sqs")

Blueprints = Mapping[str, WorkflowBlueprint | Mapping[str, Any]]
#: The long-running poller listens in turns this long, so ``stop()`` returns promptly.
POLL_TURN_SECONDS = 2


class SqsAdapter:
    def __init__(
        self,
        *,
        blueprints: Blueprints,
        registry: Registry | None = None,
        queue_url: str,
        context_table: str,
        status_table: str,
        coordination_table: str | None = None,
        payload_bucket: str | None = None,
        retention_days: float = DEFAULT_RETENTION_DAYS,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        bucket_size: int = BUCKET,
        webhook_base_url: str = "",
        dependencies: Mapping[str, Any] | None = None,
        middleware: Sequence[Middleware] = (),
        clock: Clock | None = None,
    ) -> None:
        self.queue_url = queue_url
        self.runs = run_items(
            context_table,
            payload_bucket,
            retention_days=retention_days,
            max_value_bytes=max_value_bytes,
        )
        self.statuses = DynamoDbStatusStore(status_table, retention_days=retention_days)
        self.queue = SqsJobQueue(queue_url)
        self.coordination = (
            DynamoDbCoordinationStore(coordination_table) if coordination_table else None
        )
        self.worker = Worker(
            runs=self.runs,
            statuses=self.statuses,
            queue=self.queue,
            blueprints=blueprints,
            registry=registry,
            dependencies=dependencies,
            middleware=middleware,
            clock=clock,
            bucket_size=bucket_size,
            webhook_base_url=webhook_base_url,
        )
        self.client = WorkflowClient(
            registry=self.worker.registry,
            runs=self.runs,
            statuses=self.statuses,
            queue=self.queue,
            blueprints=blueprints,
            clock=self.worker.clock,
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_settings(
        cls,
        settings: AwsSettings,
        *,
        blueprints: Blueprints,
        registry: Registry | None = None,
        **kw: Any,
    ) -> SqsAdapter:
        return cls(
            blueprints=blueprints,
            registry=registry,
            queue_url=settings.queue_url,
            context_table=settings.context_table,
            status_table=settings.status_table,
            coordination_table=settings.coordination_table,
            payload_bucket=settings.payload_bucket,
            retention_days=settings.retention_days,
            max_value_bytes=settings.max_value_bytes,
            webhook_base_url=settings.webhook_base_url,
            **kw,
        )

    async def handle_job(self, job: Job, remaining_ms: Callable[[], int] | None = None) -> None:
        await self.worker.handle_job(job, remaining_ms)

    async def handle_message(
        self, body: str, remaining_ms: Callable[[], int] | None = None
    ) -> None:
        """Parse and run one SQS message body (raises on a malformed body: it goes to the DLQ)."""
        await self.worker.handle_job(Job.from_message(body), remaining_ms)

    # ------------------------------------------------------------------ long-poll worker
    def start(self, *, wait_seconds: int = 20, batch_size: int = 10) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._poll, args=(wait_seconds, batch_size), name="flowcraft-sqs", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float | None = 10) -> None:
        """Finish the batch in hand, then stop; returns within a few seconds (the poller
        listens in short turns, and hands back any message it receives after the stop)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _poll(self, wait_seconds: int, batch_size: int) -> None:
        client = sqs_client()
        loop = asyncio.new_event_loop()
        try:
            while not self._stop.is_set():
                response = client.receive_message(
                    QueueUrl=self.queue_url,
                    MaxNumberOfMessages=batch_size,
                    WaitTimeSeconds=min(wait_seconds, POLL_TURN_SECONDS),
                )
                messages = response.get("Messages", [])
                if self._stop.is_set():
                    # Stopping: another worker takes these now, not after the visibility timeout.
                    for message in messages:
                        client.change_message_visibility(
                            QueueUrl=self.queue_url,
                            ReceiptHandle=message["ReceiptHandle"],
                            VisibilityTimeout=0,
                        )
                    break
                done = []
                for message in messages:
                    try:
                        loop.run_until_complete(self.handle_message(message["Body"]))
                        done.append(message)
                    except DeferJob as defer:
                        client.change_message_visibility(
                            QueueUrl=self.queue_url,
                            ReceiptHandle=message["ReceiptHandle"],
                            VisibilityTimeout=visibility_of(defer.seconds),
                        )
                    except Exception:
                        logger.exception(
                            "job %s failed; it will be redelivered", message["MessageId"]
                        )
                for start in range(0, len(done), 10):
                    entries = [
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(done[start : start + 10])
                    ]
                    client.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
        finally:
            loop.close()


def create_sqs_reconciler(
    adapter: SqsAdapter,
    *,
    stalled_threshold_seconds: float = 300,
    max_runs: int = 500,
) -> Reconciler:
    """A reconciler over the adapter's stores: ``run()`` returns the stats."""
    return Reconciler(
        adapter.worker,
        statuses=adapter.statuses,
        stalled_threshold_seconds=stalled_threshold_seconds,
        max_runs=max_runs,
        lock=adapter.coordination,
    )


def start_workflow(
    blueprint: WorkflowBlueprint | Mapping[str, Any],
    initial_context: Mapping[str, Any] | None = None,
    *,
    run_id: str | None = None,
    settings: AwsSettings | None = None,
) -> str:
    """Start a run on AWS from a script: idempotent when given a ``run_id``."""
    from ..blueprint import load_blueprint

    model = load_blueprint(blueprint)
    settings = settings or AwsSettings.from_environ()
    client = WorkflowClient(
        runs=run_items(
            settings.context_table,
            settings.payload_bucket,
            retention_days=settings.retention_days,
            max_value_bytes=settings.max_value_bytes,
        ),
        statuses=DynamoDbStatusStore(settings.status_table, retention_days=settings.retention_days),
        queue=SqsJobQueue(settings.queue_url),
        blueprints={model.id: model},
    )
    started, _ = client.start(model.id, initial_context, run_id=run_id)
    return started
