"""Poll an SQS queue into a handler the way Lambda's SQS event source mapping does.

The worker's correctness depends on that loop's rules (batching, the records' shape, partial
batch responses, which messages are deleted), so they are reproduced here and
``handlers.worker.handler`` runs unchanged.
Why it is shaped this way, and what it does not emulate: docs/local.md, 'The SQS event source'.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import boto3

from local.lambda_context import DEFAULT_ACCOUNT_ID, make_context

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

logger = logging.getLogger("flowcraft.local")

Handler = Callable[[dict[str, Any], Any], Any]

#: System attributes Lambda copies into ``record["attributes"]`` when SQS returns them.
LAMBDA_RECORD_ATTRIBUTES = (
    "ApproximateReceiveCount",
    "SentTimestamp",
    "SenderId",
    "ApproximateFirstReceiveTimestamp",
    "SequenceNumber",
    "MessageGroupId",
    "MessageDeduplicationId",
    "AWSTraceHeader",
    "DeadLetterQueueSourceArn",
)
#: SQS limits: messages per ReceiveMessage / DeleteMessageBatch, and the long-poll maximum.
SQS_MAX_BATCH = 10
SQS_MAX_WAIT_S = 20
#: Lambda's limit on batch size for standard queues.
LAMBDA_MAX_BATCH_SIZE = 10_000


@dataclass
class BatchReport:
    """What one poll did: how many records arrived, and which were deleted or left to retry."""

    received: int = 0
    deleted: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    handler_error: str | None = None
    duration_s: float = 0.0


@dataclass
class EventSourceStats:
    """Running totals across all pollers, for the demo and the ``up`` banner."""

    polls: int = 0
    batches: int = 0
    records: int = 0
    deleted: int = 0
    failures: int = 0
    handler_errors: int = 0


class SqsEventSource:
    """One emulated SQS event source mapping: ``queue_url`` -> ``handler(event, context)``."""

    def __init__(
        self,
        queue_url: str,
        handler: Handler,
        *,
        batch_size: int = 10,
        max_batching_window_s: float = 0.5,
        visibility_timeout_s: int | None = None,
        function_timeout_s: float = 60,
        concurrency: int = 1,
        function_name: str = "flowcraft-worker",
        region: str | None = None,
        wait_time_s: int = 1,
        session: boto3.Session | None = None,
    ) -> None:
        """Configure the mapping; no AWS call happens until the first poll.

        ``visibility_timeout_s`` overrides the queue's visibility timeout per receive (``None``
        keeps the queue's, which is what Lambda does). ``wait_time_s`` is the long-poll wait of
        :meth:`run`'s loop; it bounds how long :meth:`stop` takes, so it is short by default
        (Lambda uses 20 s, which only costs fewer idle requests).
        """
        if not 1 <= batch_size <= LAMBDA_MAX_BATCH_SIZE:
            raise ValueError(f"batch_size must be 1..{LAMBDA_MAX_BATCH_SIZE}, got {batch_size}")
        if batch_size > SQS_MAX_BATCH and max_batching_window_s < 1:
            # Lambda rejects this configuration too.
            raise ValueError("a batch_size above 10 needs max_batching_window_s >= 1")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.queue_url = queue_url
        self.handler = handler
        self.batch_size = batch_size
        self.max_batching_window_s = max(0.0, max_batching_window_s)
        self.visibility_timeout_s = visibility_timeout_s
        self.function_timeout_s = function_timeout_s
        self.concurrency = concurrency
        self.function_name = function_name
        self.wait_time_s = _clamp_wait(wait_time_s)
        # Clients are thread-safe; creating them from several threads is not, so create it here.
        self._sqs: SQSClient = session.client("sqs") if session else boto3.client("sqs")
        self.region = region or self._sqs.meta.region_name
        self._queue_arn: str | None = None
        self._account_id = DEFAULT_ACCOUNT_ID
        self._lock = threading.Lock()
        self._stats = EventSourceStats()
        self._threads: list[threading.Thread] = []
        self._stop_event: threading.Event | None = None

    # -- public API -----------------------------------------------------------------------

    @property
    def stats(self) -> EventSourceStats:
        """A snapshot of the running totals."""
        with self._lock:
            return EventSourceStats(**vars(self._stats))

    @property
    def queue_arn(self) -> str:
        """The queue's ARN (``eventSourceARN``), fetched once with its visibility timeout."""
        if self._queue_arn is None:
            self._load_queue_attributes()
        assert self._queue_arn is not None
        return self._queue_arn

    def poll_once(self, wait_time_s: int | None = None) -> BatchReport:
        """Receive one batch, invoke the handler, delete what succeeded; report what happened.

        ``wait_time_s`` is the long-poll wait for the first message (default: the instance's
        ``wait_time_s``). An empty poll returns a report with ``received == 0``.
        """
        wait = self.wait_time_s if wait_time_s is None else _clamp_wait(wait_time_s)
        arn = self.queue_arn
        messages = self._receive_batch(wait)
        with self._lock:
            self._stats.polls += 1
        if not messages:
            return BatchReport()

        started = time.monotonic()
        event = {"Records": [self._record(message, arn) for message in messages]}
        ids = [record["messageId"] for record in event["Records"]]
        failed, error = self._invoke(event, ids, started)
        failed_set = set(failed)
        to_delete = [m for m, mid in zip(messages, ids, strict=True) if mid not in failed_set]
        deleted = self._delete(to_delete)
        report = BatchReport(
            received=len(ids),
            deleted=deleted,
            failed=failed,
            handler_error=error,
            duration_s=time.monotonic() - started,
        )
        self._count(report)
        self._log_report(report)
        return report

    def run(self, stop_event: threading.Event) -> None:
        """Poll with ``concurrency`` threads until ``stop_event`` is set; returns when they end.

        A poll that fails (the emulator went away, a throttle) is logged and retried after a
        second; the pollers only stop when asked to, as Lambda's do.
        """
        threads = self._spawn(stop_event)
        for thread in threads:
            thread.join()

    def start(self, stop_event: threading.Event | None = None) -> threading.Event:
        """Start the pollers in the background; returns the event that stops them."""
        if self._threads:
            raise RuntimeError("event source already started")
        self._stop_event = stop_event or threading.Event()
        self._threads = self._spawn(self._stop_event)
        return self._stop_event

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop background pollers (at most one long-poll wait plus the batch in flight)."""
        if self._stop_event is not None:
            self._stop_event.set()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        self._threads = []

    # -- internals ------------------------------------------------------------------------

    def _spawn(self, stop_event: threading.Event) -> list[threading.Thread]:
        threads = [
            threading.Thread(
                target=self._loop,
                args=(stop_event,),
                name=f"{self.function_name}-poller-{n}",
                daemon=True,
            )
            for n in range(self.concurrency)
        ]
        for thread in threads:
            thread.start()
        return threads

    def _loop(self, stop_event: threading.Event) -> None:
        while not stop_event.is_set():
            try:
                self.poll_once()
            except Exception:
                logger.exception("%s: polling %s failed", self.function_name, self.queue_url)
                stop_event.wait(1.0)

    def _invoke(
        self, event: dict[str, Any], ids: list[str], started: float
    ) -> tuple[list[str], str | None]:
        """Call the handler as Lambda would: (failed ids, whole-batch error or ``None``).

        A whole-batch failure (an exception, a timeout, an invalid partial batch response)
        fails every record, so nothing of the batch is deleted.
        """
        context = make_context(
            self.function_name,
            timeout_s=self.function_timeout_s,
            region=self.region,
            account_id=self._account_id,
        )
        try:
            response = self.handler(event, context)
        except Exception as exc:  # Lambda reports any exception as a failed invocation.
            logger.exception("%s raised on a batch of %d", self.function_name, len(ids))
            return list(ids), f"{type(exc).__name__}: {exc}"
        elapsed = time.monotonic() - started
        if elapsed > self.function_timeout_s:
            return self._whole_batch_failed(ids, f"Task timed out after {elapsed:.2f} seconds")
        failed, error = parse_batch_response(response, ids)
        if error is not None:
            return self._whole_batch_failed(ids, error)
        return failed, None

    def _whole_batch_failed(self, ids: list[str], error: str) -> tuple[list[str], str]:
        """Every record failed: say so (no traceback to show) and keep all of them."""
        logger.error(
            "%s: whole batch of %d failed (%s); nothing deleted, it returns after the "
            "visibility timeout",
            self.function_name,
            len(ids),
            error,
        )
        return list(ids), error

    def _count(self, report: BatchReport) -> None:
        """Add one handled batch to the running totals."""
        with self._lock:
            self._stats.batches += 1
            self._stats.records += report.received
            self._stats.deleted += len(report.deleted)
            self._stats.failures += len(report.failed)
            self._stats.handler_errors += report.handler_error is not None

    def _log_report(self, report: BatchReport) -> None:
        """One INFO line per handled batch."""
        error = report.handler_error
        logger.info(
            "%s: batch of %d in %.0f ms: %d deleted, %d failed%s",
            self.function_name,
            report.received,
            report.duration_s * 1000,
            len(report.deleted),
            len(report.failed),
            f" ({error})" if error else "",
        )

    def _load_queue_attributes(self) -> None:
        with self._lock:
            if self._queue_arn is not None:
                return
            attributes = self._sqs.get_queue_attributes(
                QueueUrl=self.queue_url, AttributeNames=["QueueArn", "VisibilityTimeout"]
            )["Attributes"]
            arn = attributes["QueueArn"]
            self._account_id = arn.split(":")[4] or DEFAULT_ACCOUNT_ID
            visibility = int(attributes.get("VisibilityTimeout", "30"))
            effective = self.visibility_timeout_s or visibility
            if effective < self.function_timeout_s:
                # Lambda refuses such a mapping: a slow batch would be redelivered mid-run.
                logger.warning(
                    "%s: visibility timeout %ss is shorter than the function timeout %ss; "
                    "Lambda would refuse this mapping",
                    self.function_name,
                    effective,
                    self.function_timeout_s,
                )
            self._queue_arn = arn

    def _receive(self, count: int, wait_s: int) -> list[MessageTypeDef]:
        kwargs: dict[str, Any] = {
            "QueueUrl": self.queue_url,
            "MaxNumberOfMessages": count,
            "WaitTimeSeconds": wait_s,
            "AttributeNames": ["All"],
            "MessageSystemAttributeNames": ["All"],
            "MessageAttributeNames": ["All"],
        }
        if self.visibility_timeout_s is not None:
            kwargs["VisibilityTimeout"] = self.visibility_timeout_s
        return list(self._sqs.receive_message(**kwargs).get("Messages", []))

    def _receive_batch(self, wait_s: int) -> list[MessageTypeDef]:
        """Long-poll for a first message, then gather until the batch or the window is full."""
        messages = self._receive(min(SQS_MAX_BATCH, self.batch_size), wait_s)
        if not messages:
            return []
        deadline = time.monotonic() + self.max_batching_window_s
        while len(messages) < self.batch_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            count = min(SQS_MAX_BATCH, self.batch_size - len(messages))
            if remaining < 1:
                # WaitTimeSeconds is whole seconds: wait out the window, then take what is there.
                time.sleep(remaining)
                messages += self._receive(count, 0)
                break
            messages += self._receive(count, min(int(remaining), SQS_MAX_WAIT_S))
        # A visibility timeout shorter than the window can hand us a message twice; keep one
        # record per message, with the newest receipt handle (the only one that can delete it).
        unique: dict[str, MessageTypeDef] = {}
        for message in messages:
            unique[message["MessageId"]] = message
        return list(unique.values())

    def _record(self, message: MessageTypeDef, arn: str) -> dict[str, Any]:
        system = message.get("Attributes", {})
        record: dict[str, Any] = {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message.get("Body", ""),
            "attributes": {k: system[k] for k in LAMBDA_RECORD_ATTRIBUTES if k in system},
            "messageAttributes": lambda_message_attributes(message.get("MessageAttributes", {})),
            "md5OfBody": message.get("MD5OfBody", ""),
        }
        if "MD5OfMessageAttributes" in message:
            record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
        record.update({"eventSource": "aws:sqs", "eventSourceARN": arn, "awsRegion": self.region})
        return record

    def _delete(self, messages: Sequence[MessageTypeDef]) -> list[str]:
        """DeleteMessageBatch in chunks of ten; returns the ids SQS confirmed deleted."""
        deleted: list[str] = []
        for start in range(0, len(messages), SQS_MAX_BATCH):
            chunk = messages[start : start + SQS_MAX_BATCH]
            entries = [
                {"Id": str(n), "ReceiptHandle": message["ReceiptHandle"]}
                for n, message in enumerate(chunk)
            ]
            response = self._sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)  # type: ignore[arg-type]
            for ok in response.get("Successful", []):
                deleted.append(chunk[int(ok["Id"])]["MessageId"])
            for failure in response.get("Failed", []):
                logger.warning(
                    "%s: could not delete %s: %s %s",
                    self.function_name,
                    chunk[int(failure["Id"])]["MessageId"],
                    failure.get("Code"),
                    failure.get("Message", ""),
                )
        return deleted


def parse_batch_response(response: Any, ids: Sequence[str]) -> tuple[list[str], str | None]:
    """Lambda's reading of a ``ReportBatchItemFailures`` response: (failed ids, error or None).

    Success: ``None``, a dict without ``batchItemFailures``, or an empty/null list. Everything
    that Lambda calls a complete failure returns an error: a response that does not serialize to
    a JSON object, an entry that is not an object, a missing, empty or non-string
    ``itemIdentifier``, or one that names a message not in this batch.
    """
    try:
        response = json.loads(json.dumps(response))
    except (TypeError, ValueError) as exc:
        return [], f"response is not JSON serializable: {exc}"
    if response is None:
        return [], None
    if not isinstance(response, dict):
        return [], f"response is a {type(response).__name__}, not a JSON object"
    failures = response.get("batchItemFailures")
    if failures is None:
        return [], None
    if not isinstance(failures, list):
        return [], "batchItemFailures is not a list"
    known = set(ids)
    failed: list[str] = []
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(identifier, str) or not identifier:
            return [], f"invalid batchItemFailures entry {item!r}"
        if identifier not in known:
            return [], f"itemIdentifier {identifier!r} is not in the batch"
        if identifier not in failed:
            failed.append(identifier)
    return failed, None


def lambda_message_attributes(attributes: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """SQS ``MessageAttributes`` (boto3 shape) -> the lowercase shape Lambda puts in records.

    boto3 hands binary values over as ``bytes``; Lambda's event carries them base64-encoded.
    """
    converted: dict[str, dict[str, Any]] = {}
    for name, value in attributes.items():
        entry: dict[str, Any] = {}
        if value.get("StringValue") is not None:
            entry["stringValue"] = value["StringValue"]
        if value.get("BinaryValue") is not None:
            entry["binaryValue"] = _b64(value["BinaryValue"])
        entry["stringListValues"] = list(value.get("StringListValues", []))
        entry["binaryListValues"] = [_b64(v) for v in value.get("BinaryListValues", [])]
        entry["dataType"] = value.get("DataType", "String")
        converted[name] = entry
    return converted


def _b64(value: bytes | str) -> str:
    raw = value.encode() if isinstance(value, str) else value
    return base64.b64encode(raw).decode("ascii")


def _clamp_wait(wait_s: int) -> int:
    return max(0, min(int(wait_s), SQS_MAX_WAIT_S))
