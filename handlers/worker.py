"""SQS worker: one invocation runs a batch of jobs; each job is one node execution.

``handler(event, context)`` returns ``{"batchItemFailures": [...]}`` naming only the records that
must come back. Why failures are per record, when a whole failed batch raises, the time budget,
FIFO queues and the metrics: docs/design.md, section 5.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, NoReturn, cast

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    SqsFifoPartialProcessor,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from handlers import config
from handlers.config import logger, metrics

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from flowcraft_core.distributed.job import Job

#: Kept free below that limit for the time between the receive and this invocation.
VISIBILITY_MARGIN_SECONDS = 60
#: Time kept free for a job whose node has no ``timeout`` (capped by the invocation's budget).
DEFAULT_RESERVE_MS = 10_000
#: The default reserve is at most this share of the invocation's time budget.
MAX_RESERVE_SHARE = 1 / 3
#: Added to a node's own timeout: committing and sending successors takes a few requests.
COMMIT_MARGIN_MS = 1_000
#: EMF allows at most 100 values per metric in one document.
MAX_DURATION_VALUES = 100
#: How much of an unparseable body goes into the log line.
BODY_EXCERPT_CHARS = 200


class MalformedJob(ValueError):
    """The message body is not a job (not JSON, wrong fields, too large)."""


class HandedBack(RuntimeError):
    """Not started: the invocation has too little time left for this job."""


class _Invocation:
    """One invocation's state: its event loop, time budget, and why records failed."""

    def __init__(self, container: config.Container, context: LambdaContext) -> None:
        from flowcraft_core.distributed.worker import WorkerStats

        self.container = container
        self.adapter = container.adapter
        self.context = context
        self.budget_ms = context.get_remaining_time_in_millis()
        self.began = time.monotonic()
        self.loop = asyncio.new_event_loop()
        self.started = 0
        self.unexpected = 0
        self.handed_back: list[SQSRecord] = []
        self.deferred: list[tuple[SQSRecord, float]] = []
        self.seen: set[str] = set()
        # Lambda runs one invocation at a time per container, so the worker's counters can be
        # reset here and read at the end as this invocation's figures.
        self.adapter.worker.stats = WorkerStats()

    # ------------------------------------------------------------------ one record
    def handle(self, record: SQSRecord) -> None:
        """The record handler Powertools calls; raising marks the record as failed."""
        from flowcraft_core.distributed.job import Job

        self.seen.add(record.message_id)
        keys: dict[str, object] = {"message_id": record.message_id}
        job: Job | None = None
        parse_error: ValueError | None = None
        try:
            job = Job.from_message(record.body)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError, so is the size cap
            parse_error = exc
        if job is not None:
            keys.update(run_id=job.run_id, node_id=job.node_id, attempt=job.attempt)
        logger.thread_safe_append_keys(**keys)
        try:
            if job is None:
                _reject_malformed(record, parse_error)
            self._check_time(record, job)
            self.started += 1
            self._run(record, job)
        finally:
            logger.thread_safe_remove_keys(keys)

    def _run(self, record: SQSRecord, job: Job) -> None:
        """Run the job; what it raises is logged for what it is (not due, poison, unexpected)."""
        from flowcraft_core.distributed.errors import DeferJob, PoisonJob

        began = time.perf_counter()
        try:
            self.loop.run_until_complete(
                self.adapter.handle_job(job, self.context.get_remaining_time_in_millis)
            )
        except DeferJob as defer:
            # A FIFO queue cannot delay a message: keep it invisible until it is due.
            self.deferred.append((record, defer.seconds))
            logger.info("job not due yet; deferred", extra={"seconds": round(defer.seconds)})
            raise
        except PoisonJob as exc:
            logger.error(
                "job can never run; it returns to the queue and moves to the dead-letter "
                "queue after maxReceiveCount receives",
                extra={
                    "error": str(exc),
                    "receive_count": record.attributes.approximate_receive_count,
                },
            )
            raise
        except Exception:
            self.unexpected += 1
            logger.exception(
                "job failed; it returns to the queue after its visibility timeout",
                extra={"receive_count": record.attributes.approximate_receive_count},
            )
            raise
        logger.info(
            "job done", extra={"duration_ms": round((time.perf_counter() - began) * 1000, 1)}
        )

    def _check_time(self, record: SQSRecord, job: Job) -> None:
        if self.started == 0:
            return  # the first job always starts (docs/design.md, section 5)
        remaining = self.context.get_remaining_time_in_millis()
        reserve = self._reserve_ms(job)
        if remaining >= reserve:
            return
        self.handed_back.append(record)
        logger.warning(
            "not started: too little time left in this invocation; handed back to the queue",
            extra={"remaining_ms": remaining, "reserve_ms": reserve},
        )
        raise HandedBack(
            f"job not started: {remaining} ms left, {reserve:.0f} ms reserved for node "
            f"{job.node_id!r}"
        )

    def _reserve_ms(self, job: Job) -> float:
        from flowcraft_core.scheduler import split_key

        node_id = split_key(job.node_id)[0]
        timeout = self.container.node_timeouts_ms.get((job.blueprint_id, node_id))
        if timeout is not None:
            return timeout + COMMIT_MARGIN_MS
        return min(DEFAULT_RESERVE_MS, self.budget_ms * MAX_RESERVE_SHARE)

    # ------------------------------------------------------------------ after the batch
    def release_unstarted(self, failed: list[SQSRecord]) -> None:
        """Set the visibility of records that were not finished (best effort, one call per ten).

        Records never tried become visible now: the handed-back records and, on a FIFO queue, the
        records Powertools reported without calling us because an earlier record of their group
        failed (left in flight they would block their group until the visibility timeout even
        once the record before them is back). Deferred records (a sleep or retry delay on a FIFO
        queue, which has no per-message delay) stay invisible until they are due. Records that
        failed on their own keep the visibility timeout as a back-off.
        """
        from flowcraft_core.distributed.parking import MAX_VISIBILITY_SECONDS, visibility_of

        queue_url = self.adapter.queue_url
        queue_name = queue_url.rstrip("/").rsplit("/", 1)[-1]
        unstarted = self.handed_back + [r for r in failed if r.message_id not in self.seen]
        # SQS keeps a message invisible at most 12 hours from when it was received: leave
        # room for the time this batch has taken (and for the batching window before it).
        longest = MAX_VISIBILITY_SECONDS - VISIBILITY_MARGIN_SECONDS
        longest -= int(time.monotonic() - self.began)
        timed = [(r, 0) for r in unstarted] + [
            (r, visibility_of(seconds, longest)) for r, seconds in self.deferred
        ]
        records = [
            (r, after) for r, after in timed if r.event_source_arn.rsplit(":", 1)[-1] == queue_name
        ]
        if not records:
            return
        from flowcraft_core.aws.clients import sqs_client

        client = sqs_client()
        for start in range(0, len(records), 10):
            chunk = [r for r, _ in records[start : start + 10]]
            entries = [
                {"Id": str(n), "ReceiptHandle": r.receipt_handle, "VisibilityTimeout": after}
                for n, (r, after) in enumerate(records[start : start + 10])
            ]
            try:
                response = client.change_message_visibility_batch(
                    QueueUrl=queue_url, Entries=entries
                )
            except Exception:
                logger.warning(
                    "could not release handed-back messages; they return after their "
                    "visibility timeout",
                    exc_info=True,
                )
                continue
            for failure in response.get("Failed") or []:
                logger.warning(
                    "could not release a handed-back message; it returns after its "
                    "visibility timeout",
                    extra={
                        "message_id": chunk[int(failure["Id"])].message_id,
                        "code": failure.get("Code"),
                    },
                )

    def emit_metrics(self, failures: int) -> None:
        stats = self.adapter.worker.stats
        for name, value in (
            ("NodesExecuted", stats.nodes_executed),
            ("NodeFailures", stats.node_failures),
            ("Retries", stats.retries),
            ("RunsCompleted", stats.runs_completed),
            ("RunsFailed", stats.runs_failed),
            ("RecordFailures", failures),
            ("RecordsHandedBack", len(self.handed_back)),
        ):
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
        for duration in list(stats.durations_ms)[:MAX_DURATION_VALUES]:
            metrics.add_metric(name="NodeDuration", unit=MetricUnit.Milliseconds, value=duration)

    def close(self) -> None:
        """Cancel what a job left running, then close the loop (without joining threads)."""
        loop = self.loop
        try:
            pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()


def _processor(event: dict[str, Any]) -> BatchProcessor:
    records = event.get("Records") or []
    fifo = any(str(r.get("eventSourceARN", "")).endswith(".fifo") for r in records)
    processor: BatchProcessor
    if fifo:
        processor = SqsFifoPartialProcessor(skip_group_on_error=True)
    else:
        processor = BatchProcessor(event_type=EventType.SQS)
    processor.raise_on_entire_batch_failure = False  # decided below (docs/design.md, section 5)
    return processor


def _reject_malformed(record: SQSRecord, error: ValueError | None) -> NoReturn:
    """A body that is not a job: logged once, then back to the queue (and on to the DLQ)."""
    logger.error(
        "message is not a Flowcraft job; it returns to the queue and moves to the "
        "dead-letter queue after maxReceiveCount receives",
        extra={
            "error": str(error),
            "receive_count": record.attributes.approximate_receive_count,
            "body_excerpt": (record.body or "")[:BODY_EXCERPT_CHARS],
        },
    )
    raise MalformedJob(f"message {record.message_id} is not a job: {error}")


@config.traced
@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """SQS batch -> ``{"batchItemFailures": [...]}`` naming only the records to retry."""
    try:
        container = config.container()
    except config.ConfigError:
        logger.exception("worker is not configured; the whole batch returns to the queue")
        metrics.add_metric(name="ConfigErrors", unit=MetricUnit.Count, value=1)
        raise
    processor = _processor(event)
    invocation = _Invocation(container, context)
    failures = 0
    try:
        response = process_partial_response(
            event=event, record_handler=invocation.handle, processor=processor, context=context
        )
        failures = len(response.get("batchItemFailures") or [])
    finally:
        invocation.close()
        # The SQS processors only hold SQS records (the type is Powertools' union of all kinds).
        invocation.release_unstarted(cast("list[SQSRecord]", processor.fail_messages))
        invocation.emit_metrics(failures)
    total = len(processor.records)
    if total and failures == total and invocation.unexpected:
        raise BatchProcessingError(
            msg=(
                f"all {total} records failed, {invocation.unexpected} of them unexpectedly; "
                "failing the invocation so the Errors alarm and Lambda's back-off apply"
            ),
            child_exceptions=processor.exceptions,
        )
    if failures:
        logger.info(
            "batch done with failures",
            extra={
                "records": total,
                "failed": failures,
                "handed_back": len(invocation.handed_back),
            },
        )
    return dict(response)
