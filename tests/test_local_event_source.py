"""``local.event_source`` follows Lambda's SQS event source rules against the emulator.

The queue gets a one-second visibility timeout and ``maxReceiveCount`` 2, so redelivery and
dead-lettering are observable in about a second instead of minutes.
"""

from __future__ import annotations

import base64
import threading
import time
from dataclasses import replace
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.parser.models import SqsModel

from flowcraft_core.aws.schema import JOB_QUEUE
from local.emulator import Emulator
from local.event_source import SqsEventSource, parse_batch_response
from local.provision import provision

FAST_QUEUE = replace(JOB_QUEUE, visibility_timeout_seconds=1, max_receive_count=2)


class Recorder:
    """A handler that records its calls and fails the records whose body is in ``fail``."""

    def __init__(self, fail: set[str] | None = None, raises: Exception | None = None) -> None:
        self.fail = fail or set()
        self.raises = raises
        self.events: list[dict[str, Any]] = []
        self.contexts: list[Any] = []
        self.remaining: list[tuple[int, int]] = []

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.events.append(event)
        self.contexts.append(context)
        first = context.get_remaining_time_in_millis()
        time.sleep(0.02)
        self.remaining.append((first, context.get_remaining_time_in_millis()))
        if self.raises is not None:
            raise self.raises
        return {
            "batchItemFailures": [
                {"itemIdentifier": r["messageId"]}
                for r in event["Records"]
                if r["body"] in self.fail
            ]
        }


@pytest.fixture
def queue(aws: Emulator) -> dict[str, str]:
    return provision("es", queue=FAST_QUEUE, tables=())


def _send(queue_url: str, bodies: list[str]) -> dict[str, str]:
    """Send in one batch; returns body -> message id."""
    response = boto3.client("sqs").send_message_batch(
        QueueUrl=queue_url,
        Entries=[{"Id": str(n), "MessageBody": body} for n, body in enumerate(bodies)],
    )
    return {bodies[int(ok["Id"])]: ok["MessageId"] for ok in response["Successful"]}


def _counts(queue_url: str) -> tuple[int, int]:
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )


def test_partial_failure_deletes_only_successes_and_redelivers_failures(
    queue: dict[str, str],
) -> None:
    url = queue["FLOWCRAFT_QUEUE_URL"]
    ids = _send(url, ["0", "1", "2", "3", "4"])
    handler = Recorder(fail={"1", "3"})
    source = SqsEventSource(url, handler, max_batching_window_s=0, function_timeout_s=5)

    report = source.poll_once(wait_time_s=1)

    assert report.received == 5
    assert report.handler_error is None
    assert sorted(report.failed) == sorted([ids["1"], ids["3"]])
    assert sorted(report.deleted) == sorted(ids[b] for b in "024")
    assert _counts(url) == (0, 2)  # the two failures are in flight until the timeout

    retry = source.poll_once(wait_time_s=3)  # they come back after the 1 s visibility timeout
    records = handler.events[1]["Records"]
    assert sorted(r["body"] for r in records) == ["1", "3"]
    assert {r["attributes"]["ApproximateReceiveCount"] for r in records} == {"2"}
    assert sorted(retry.failed) == sorted([ids["1"], ids["3"]])
    assert source.stats.batches == 2 and source.stats.records == 7 and source.stats.deleted == 3


def test_records_and_context_have_lambda_shape(queue: dict[str, str]) -> None:
    url = queue["FLOWCRAFT_QUEUE_URL"]
    boto3.client("sqs").send_message(
        QueueUrl=url,
        MessageBody='{"job": 1}',
        MessageAttributes={
            "kind": {"DataType": "String", "StringValue": "node"},
            "attempt": {"DataType": "Number", "StringValue": "3"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        },
    )
    handler = Recorder()
    source = SqsEventSource(
        url, handler, max_batching_window_s=0, function_timeout_s=5, function_name="fw"
    )

    source.poll_once(wait_time_s=1)

    (event,) = handler.events
    SqsModel.model_validate(event)  # Powertools' model of the real event accepts it
    (record,) = event["Records"]
    assert record["body"] == '{"job": 1}'
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"].endswith(":es-jobs")
    assert record["awsRegion"] == source.region
    assert record["md5OfBody"] and record["md5OfMessageAttributes"]
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert {"SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"} <= set(
        record["attributes"]
    )
    assert record["messageAttributes"] == {
        "kind": {
            "stringValue": "node",
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "String",
        },
        "attempt": {
            "stringValue": "3",
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "Number",
        },
        "blob": {
            "binaryValue": base64.b64encode(b"\x00\x01").decode(),
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "Binary",
        },
    }

    (context,) = handler.contexts
    assert context.function_name == "fw"
    assert context.invoked_function_arn.endswith(":function:fw")
    assert context.aws_request_id and context.log_group_name == "/aws/lambda/fw"
    assert context.memory_limit_in_mb.isdigit() and context.function_version == "$LATEST"
    ((first, later),) = handler.remaining
    assert 5000 >= first > later > 0


def test_always_failing_record_lands_in_the_dlq(queue: dict[str, str]) -> None:
    url, dlq = queue["FLOWCRAFT_QUEUE_URL"], queue["FLOWCRAFT_DLQ_URL"]
    ids = _send(url, ["poison"])
    handler = Recorder(fail={"poison"})
    # Receive with visibility 0 so each failure is visible again at once; redrive is the queue's.
    source = SqsEventSource(
        url, handler, max_batching_window_s=0, visibility_timeout_s=0, function_timeout_s=5
    )

    reports = [source.poll_once(wait_time_s=0) for _ in range(3)]

    assert [r.received for r in reports] == [1, 1, 0]  # the third receive moves it to the DLQ
    counts = [
        r["attributes"]["ApproximateReceiveCount"] for e in handler.events for r in e["Records"]
    ]
    assert counts == ["1", "2"]
    moved = boto3.client("sqs").receive_message(QueueUrl=dlq, MaxNumberOfMessages=10)
    assert [(m["MessageId"], m["Body"]) for m in moved["Messages"]] == [(ids["poison"], "poison")]


@pytest.mark.parametrize(
    "handler",
    [
        Recorder(raises=RuntimeError("boom")),
        lambda event, context: {"batchItemFailures": [{"itemIdentifier": "not-in-batch"}]},
    ],
    ids=["raises", "unknown-item-identifier"],
)
def test_whole_batch_failure_deletes_nothing(queue: dict[str, str], handler: Any) -> None:
    url = queue["FLOWCRAFT_QUEUE_URL"]
    ids = _send(url, ["a", "b", "c"])
    source = SqsEventSource(url, handler, max_batching_window_s=0, function_timeout_s=5)

    report = source.poll_once(wait_time_s=1)

    assert report.received == 3 and report.deleted == []
    assert sorted(report.failed) == sorted(ids.values())
    assert report.handler_error
    assert _counts(url) == (0, 3)
    assert source.stats.handler_errors == 1


def test_batch_size_and_background_pollers(queue: dict[str, str]) -> None:
    url = queue["FLOWCRAFT_QUEUE_URL"]
    _send(url, [str(n) for n in range(5)])
    sizes: list[int] = []
    lock = threading.Lock()

    def handler(event: dict[str, Any], context: Any) -> None:
        with lock:
            sizes.append(len(event["Records"]))

    source = SqsEventSource(
        url, handler, batch_size=2, max_batching_window_s=0, concurrency=2, wait_time_s=1
    )
    source.start()
    try:
        deadline = time.monotonic() + 5
        while source.stats.deleted < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        source.stop()
    assert sum(sizes) == 5 and max(sizes) <= 2
    assert _counts(url) == (0, 0)


def test_batching_window_gathers_more_than_ten(queue: dict[str, str]) -> None:
    url = queue["FLOWCRAFT_QUEUE_URL"]
    _send(url, [str(n) for n in range(10)])
    _send(url, ["10", "11"])
    handler = Recorder()
    source = SqsEventSource(
        url, handler, batch_size=15, max_batching_window_s=1, visibility_timeout_s=30
    )

    report = source.poll_once(wait_time_s=1)

    assert report.received == 12 and len(report.deleted) == 12
    assert len(handler.events) == 1


def test_rejects_configurations_lambda_rejects() -> None:
    with pytest.raises(ValueError):
        SqsEventSource("http://unused", print, batch_size=11, max_batching_window_s=0.5)
    with pytest.raises(ValueError):
        SqsEventSource("http://unused", print, batch_size=0)


@pytest.mark.parametrize(
    ("response", "failed", "ok"),
    [
        (None, [], True),
        ({}, [], True),
        ({"batchItemFailures": None}, [], True),
        ({"batchItemFailures": []}, [], True),
        ({"batchItemFailures": [{"itemIdentifier": "m2"}]}, ["m2"], True),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, [], False),
        ({"batchItemFailures": [{"itemIdentifier": None}]}, [], False),
        ({"batchItemFailures": [{"id": "m1"}]}, [], False),
        ({"batchItemFailures": [{"itemIdentifier": "m9"}]}, [], False),
        ({"batchItemFailures": "m1"}, [], False),
        ("ok", [], False),
        ({"batchItemFailures": [], "x": object()}, [], False),
    ],
)
def test_parse_batch_response_follows_lambda(response: Any, failed: list[str], ok: bool) -> None:
    got, error = parse_batch_response(response, ["m1", "m2"])
    assert got == failed
    assert (error is None) == ok
