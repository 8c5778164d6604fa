"""The Lambda handlers end to end against the moto server: API -> queue -> worker -> reconciler.

Every test provisions the real queue and tables (``local.provision``) on a freshly reset
emulator, points ``FLOWCRAFT_*`` at them with ``FLOWCRAFT_APP=tests.handler_app``, and calls the
handlers in-process with real event shapes, the way Lambda would: SQS events are built from
``ReceiveMessage`` output, and messages are deleted only when the handler did not report them.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from flowcraft_core.aws.clients import reset_clients
from flowcraft_core.aws.schema import QueueSpec
from handlers import api, config, reconciler, worker
from local.emulator import Emulator
from local.provision import TABLE_SETTINGS, provision
from tests import handler_app

EVENTS = Path(__file__).resolve().parent.parent / "events"
REGION = "us-east-1"


@dataclass
class FakeContext:
    """What Lambda passes as ``context``, with a controlled clock for the time-budget tests.

    The first ``get_remaining_time_in_millis()`` answers ``budget_ms`` (the function timeout, as
    at the start of a real invocation) when given; every later call answers ``remaining_ms``, as
    if the time in between had been spent.
    """

    remaining_ms: int = 60_000
    budget_ms: int | None = None
    function_name: str = "flowcraft-test"
    memory_limit_in_mb: str = "1024"
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:123456789012:function:flowcraft-test"
    aws_request_id: str = "00000000-0000-4000-8000-000000000000"
    calls: int = 0

    def get_remaining_time_in_millis(self) -> int:
        self.calls += 1
        if self.calls == 1 and self.budget_ms is not None:
            return self.budget_ms
        return self.remaining_ms


@dataclass
class Stack:
    """The provisioned resources plus helpers that play API Gateway and the SQS event source."""

    settings: dict[str, str]
    sqs: Any
    dynamodb: Any
    queue_arn: str
    worker_responses: list[dict[str, Any]] = field(default_factory=list)

    @property
    def queue_url(self) -> str:
        return self.settings["FLOWCRAFT_QUEUE_URL"]

    # -- API Gateway ---------------------------------------------------------------------
    def call_api(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: str | None = None,
        headers: dict[str, str] | None = None,
        base64_body: bool = False,
    ) -> tuple[int, Any]:
        text = raw if raw is not None else (None if body is None else json.dumps(body))
        if text is not None and base64_body:
            text = base64.b64encode(text.encode()).decode()
        response = api.handler(proxy_event(method, path, text, headers, base64_body), FakeContext())
        assert set(response) >= {"statusCode", "body"}
        payload = json.loads(response["body"]) if response["body"] else None
        return response["statusCode"], payload

    def start(self, blueprint_id: str = "order", **extra: Any) -> str:
        status, body = self.call_api(
            "POST",
            "/runs",
            {"blueprintId": blueprint_id, "context": handler_app.SAMPLE_CONTEXT, **extra},
        )
        assert status == 202, body
        return str(body["runId"])

    def get(self, run_id: str) -> dict[str, Any]:
        status, body = self.call_api("GET", f"/runs/{run_id}")
        assert status == 200, body
        return dict(body)

    # -- SQS and the event source ------------------------------------------------------------
    def receive(self, count: int = 10) -> list[dict[str, Any]]:
        response = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=count,
            WaitTimeSeconds=0,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return list(response.get("Messages", []))

    def receive_exactly(self, count: int) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        for _ in range(10):
            messages += self.receive(count - len(messages))
            if len(messages) >= count:
                return messages
        raise AssertionError(f"expected {count} messages, got {len(messages)}")

    def send_raw(self, body: str) -> None:
        self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=body)

    def event(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        return {"Records": [sqs_record(m, self.queue_arn) for m in messages]}

    def run_worker(
        self, messages: list[dict[str, Any]], context: FakeContext | None = None
    ) -> list[str]:
        """Invoke the worker on these messages, delete what succeeded; return the failed ids."""
        response = worker.handler(self.event(messages), context or FakeContext())
        self.worker_responses.append(response)
        failed = [f["itemIdentifier"] for f in response["batchItemFailures"]]
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(done)
                ],
            )
        return failed

    def drain(self, rounds: int = 20) -> None:
        """Play the event source until the queue is empty (failures would loop: none expected)."""
        for _ in range(rounds):
            messages = self.receive()
            if not messages:
                return
            assert self.run_worker(messages) == []
        raise AssertionError("queue did not drain")

    def queue_depth(self) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return sum(int(v) for v in attributes.values())

    def table_items(self) -> dict[str, int]:
        return {
            role: self.dynamodb.scan(TableName=self.settings[variable], Select="COUNT")["Count"]
            for role, variable in TABLE_SETTINGS.items()
        }


def proxy_event(
    method: str,
    path: str,
    body: str | None = None,
    headers: dict[str, str] | None = None,
    base64_body: bool = False,
) -> dict[str, Any]:
    """A REST API (v1) proxy event, as API Gateway builds it for the stack's resources."""
    from urllib.parse import parse_qsl

    path, _, query = path.partition("?")
    pairs = parse_qsl(query, keep_blank_values=True)
    parts = path.strip("/").split("/")
    resource, params = path, None
    if len(parts) >= 2 and parts[0] == "runs":
        params = {"runId": parts[1]}
        resource = "/runs/{runId}" + ("/" + "/".join(parts[2:]) if len(parts) > 2 else "")
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": all_headers,
        "multiValueHeaders": {k: [v] for k, v in all_headers.items()},
        "queryStringParameters": dict(pairs) or None,
        "multiValueQueryStringParameters": {k: [v for n, v in pairs if n == k] for k, _ in pairs}
        or None,
        "pathParameters": params,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": f"/prod{path}",
            "stage": "prod",
            "requestId": "req-1",
            "accountId": "123456789012",
            "apiId": "abc123",
            "identity": {"sourceIp": "127.0.0.1"},
        },
        "body": body,
        "isBase64Encoded": base64_body,
    }


def sqs_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    """The Lambda SQS event record for a ``ReceiveMessage`` message."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {},
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


def make_stack(monkeypatch: pytest.MonkeyPatch, queue: QueueSpec | None = None) -> Stack:
    settings = provision("test", queue=queue) if queue else provision("test")
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("FLOWCRAFT_APP", "tests.handler_app")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    config.reset()
    reset_clients()
    sqs = boto3.client("sqs")
    arn = sqs.get_queue_attributes(
        QueueUrl=settings["FLOWCRAFT_QUEUE_URL"], AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    return Stack(settings=settings, sqs=sqs, dynamodb=boto3.client("dynamodb"), queue_arn=arn)


@pytest.fixture
def stack(aws: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    yield make_stack(monkeypatch)
    config.reset()


class JsonLines(logging.Handler):
    """Collects log lines formatted by the Powertools formatter (with the appended keys)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict[str, Any]] = []
        self.setFormatter(config.logger.registered_formatter)

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def log_lines() -> Iterator[list[dict[str, Any]]]:
    collector = JsonLines()
    target = logging.getLogger(config.SERVICE)
    target.addHandler(collector)
    yield collector.lines
    target.removeHandler(collector)


# ------------------------------------------------------------------------------ the worker


def test_api_start_then_worker_batches_run_it_to_completion(
    stack: Stack, log_lines: list[dict[str, Any]]
) -> None:
    status, body = stack.call_api(
        "POST", "/runs", {"blueprintId": "order", "context": handler_app.SAMPLE_CONTEXT}
    )
    assert status == 202
    assert body["status"] == "running"
    run_id = body["runId"]

    stack.drain()

    run = stack.get(run_id)
    assert run["status"] == "completed"
    assert run["outputs"] == {
        "validate": {"total": 21.0},
        "charge": {"charged": 21.0},
        "ship": {"carrier": "standard", "charged": 21.0},
    }
    assert run["context"]["total"] == 21.0
    assert "error" not in run
    assert stack.queue_depth() == 0
    assert all(r == {"batchItemFailures": []} for r in stack.worker_responses)
    # One line per job, carrying the record's keys; the keys go away with the record.
    done = [line for line in log_lines if line["message"] == "job done"]
    assert len(done) == 1  # validate ran, then charge and ship in the same invocation
    assert (done[0]["run_id"], done[0]["node_id"]) == (run_id, "validate")
    assert done[0]["message_id"] and done[0]["duration_ms"] >= 0
    assert all("message_id" in line for line in log_lines if "node_id" in line)


def test_partial_batch_failure_names_exactly_the_bad_messages(
    stack: Stack, log_lines: list[dict[str, Any]]
) -> None:
    run_id = stack.start()
    stack.send_raw("not json")
    stack.send_raw(
        json.dumps({"runId": "no-such-run", "blueprintId": "order", "nodeId": "validate"})
    )
    messages = stack.receive_exactly(3)
    bad = {
        m["MessageId"] for m in messages if m["Body"] == "not json" or "no-such-run" in m["Body"]
    }

    failed = stack.run_worker(messages)

    assert set(failed) == bad and len(failed) == 2
    assert stack.get(run_id)["nodes"]["validate"] == "completed"
    errors = [line for line in log_lines if line["level"] == "ERROR"]
    assert {line["message_id"] for line in errors} == bad
    assert any("dead-letter queue" in line["message"] for line in errors)


def test_batch_of_only_bad_messages_is_reported_not_raised(stack: Stack) -> None:
    stack.send_raw("not json")
    stack.send_raw(json.dumps({"runId": "ghost", "blueprintId": "order", "nodeId": "validate"}))
    messages = stack.receive_exactly(2)

    failed = stack.run_worker(messages)

    assert sorted(failed) == sorted(m["MessageId"] for m in messages)


def test_batch_where_every_record_fails_unexpectedly_raises(stack: Stack) -> None:
    stack.start()
    messages = stack.receive_exactly(1)
    # The worker's table disappears: every job fails for a reason no message can fix.
    stack.dynamodb.delete_table(TableName=stack.settings["FLOWCRAFT_CONTEXT_TABLE"])

    with pytest.raises(BatchProcessingError, match="unexpectedly"):
        worker.handler(stack.event(messages), FakeContext())


def test_low_remaining_time_hands_records_back_without_running_them(stack: Stack) -> None:
    first, second, third = stack.start(), stack.start(), stack.start()
    messages = stack.receive_exactly(3)
    by_run = {json.loads(m["Body"])["runId"]: m for m in messages}
    ordered = [by_run[first], by_run[second], by_run[third]]

    failed = stack.run_worker(ordered, FakeContext(budget_ms=60_000, remaining_ms=1_500))

    # The first job always starts; the others do not fit in the 1.5 s left (10 s reserved).
    assert failed == [by_run[second]["MessageId"], by_run[third]["MessageId"]]
    assert stack.get(first)["nodes"]["validate"] == "completed"
    for run_id in (second, third):
        assert stack.get(run_id)["nodes"].get("validate") != "completed"
    # Handed back messages are visible again at once (not after the 180 s visibility timeout).
    again = stack.receive()
    assert {m["MessageId"] for m in again} >= set(failed)


def test_time_reserve_follows_the_node_timeout(stack: Stack) -> None:
    quick, slow = stack.start(), stack.start("slow")
    messages = stack.receive_exactly(2)
    by_run = {json.loads(m["Body"])["runId"]: m for m in messages}

    # 15 s left: enough for a node without timeout (reserve min(10 s, 15 s / 3)), not for
    # ``nap`` whose timeout is 20 s.
    failed = stack.run_worker([by_run[quick], by_run[slow]], FakeContext(remaining_ms=15_000))
    assert failed == [by_run[slow]["MessageId"]]
    assert stack.get(quick)["status"] == "completed"  # 15 s also let it chain charge and ship

    # Alone in its batch, ``nap`` starts: a fresh invocation would not give it more time.
    assert stack.run_worker(stack.receive_exactly(1), FakeContext(remaining_ms=15_000)) == []
    assert stack.get(slow)["status"] == "completed"


def test_fifo_batch_holds_back_only_the_failing_group(
    aws: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = make_stack(monkeypatch, QueueSpec(fifo=True))
    try:
        assert stack.queue_url.endswith(".fifo")
        first, second = stack.start(), stack.start()
        # A malformed message in the first run's group.
        stack.sqs.send_message(
            QueueUrl=stack.queue_url,
            MessageBody="not json",
            MessageGroupId=f"{first}:validate",  # the group of the first run's start job
            MessageDeduplicationId="malformed",
        )
        messages = stack.receive_exactly(3)
        group = {m["MessageId"]: m["Attributes"]["MessageGroupId"] for m in messages}
        poison = next(m for m in messages if m["Body"] == "not json")
        # Put the poison first so that the first run's start job comes after it.
        ordered = [poison] + [m for m in messages if m is not poison]

        failed = stack.run_worker(ordered)

        assert poison["MessageId"] in failed
        assert all(group[m] == f"{first}:validate" for m in failed)  # only that group waits
        assert stack.get(second)["nodes"]["validate"] == "completed"
        assert stack.get(first)["nodes"].get("validate") != "completed"
        # The held-back start job was released at once; the malformed one keeps its timeout.
        visible = stack.sqs.get_queue_attributes(
            QueueUrl=stack.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]["ApproximateNumberOfMessages"]
        assert visible == "1"
    finally:
        config.reset()


def test_worker_without_settings_fails_with_the_missing_variables(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLOWCRAFT_QUEUE_URL")
    monkeypatch.delenv("FLOWCRAFT_STATUS_TABLE")
    with pytest.raises(config.ConfigError, match="FLOWCRAFT_QUEUE_URL, FLOWCRAFT_STATUS_TABLE"):
        worker.handler(json.loads((EVENTS / "sqs-start-job.json").read_text()), FakeContext())


def test_unusable_app_module_is_named(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWCRAFT_APP", "tests.no_such_app")
    with pytest.raises(config.ConfigError, match=r"FLOWCRAFT_APP='tests\.no_such_app'"):
        config.container()
    monkeypatch.setenv("FLOWCRAFT_APP", "json")  # imports, but has no blueprints
    with pytest.raises(config.ConfigError, match="must define `blueprints`"):
        config.container()


def test_tracer_is_only_wanted_inside_lambda_with_tracing_on() -> None:
    assert not config.tracing_wanted({})
    assert not config.tracing_wanted({"POWERTOOLS_TRACE_DISABLED": "false"})
    lambda_env = {"AWS_LAMBDA_FUNCTION_NAME": "flowcraft-worker"}
    assert config.tracing_wanted(lambda_env)
    assert config.tracing_wanted({**lambda_env, "POWERTOOLS_TRACE_DISABLED": "false"})
    assert not config.tracing_wanted({**lambda_env, "POWERTOOLS_TRACE_DISABLED": "true"})
    assert not config.tracing_wanted({**lambda_env, "AWS_SAM_LOCAL": "true"})


# ------------------------------------------------------------------------------ reconciler


def test_reconciler_resends_the_job_of_a_stalled_run(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWCRAFT_STALLED_SECONDS", "0.5")  # the next call rebuilds the config
    run_id = stack.start()
    lost = stack.receive_exactly(1)  # the start job is lost: received, never processed
    stack.sqs.delete_message(QueueUrl=stack.queue_url, ReceiptHandle=lost[0]["ReceiptHandle"])
    time.sleep(0.7)

    stats = reconciler.handler(json.loads((EVENTS / "scheduled.json").read_text()), FakeContext())

    assert set(stats) == {
        "scanned_items",
        "stalled_runs",
        "reconciled_runs",
        "failed_runs",
        "jobs_sent",
        "skipped_locked",
    }
    assert stats["stalled_runs"] == 1
    assert stats["reconciled_runs"] == 1
    assert stats["jobs_sent"] == 1
    assert stats["failed_runs"] == 0
    stack.drain()
    assert stack.get(run_id)["status"] == "completed"


# ------------------------------------------------------------------------------ sample events


def test_sample_events_drive_the_handlers(stack: Stack) -> None:
    def sample(name: str) -> dict[str, Any]:
        return dict(json.loads((EVENTS / name).read_text()))

    def call(name: str) -> tuple[int, Any]:
        response = api.handler(sample(name), FakeContext())
        return response["statusCode"], json.loads(response["body"])

    # The SQS sample names run demo-run-1, which does not exist yet: a failure, not a crash.
    sqs_event = sample("sqs-start-job.json")
    assert worker.handler(sqs_event, FakeContext()) == {
        "batchItemFailures": [{"itemIdentifier": sqs_event["Records"][0]["messageId"]}]
    }
    assert reconciler.handler(sample("scheduled.json"), FakeContext())["stalled_runs"] == 0

    assert call("api-start-run.json") == (202, {"runId": "demo-run-1", "status": "running"})
    status, run = call("api-get-run.json")
    assert status == 200
    assert (run["runId"], run["blueprintId"], run["status"]) == ("demo-run-1", "order", "running")
    assert run["context"]["orderId"] == "A-1001"
    assert call("api-cancel-run.json") == (202, {"runId": "demo-run-1", "status": "cancelled"})

    # The resume sample resumes demo-approval-1 at its wait node.
    stack.start("approval", runId="demo-approval-1")
    stack.drain()
    assert stack.get("demo-approval-1")["status"] == "awaiting"
    assert call("api-resume-run.json") == (
        202,
        {"runId": "demo-approval-1", "status": "running", "nodeId": "manager_approval"},
    )
    stack.drain()  # also consumes demo-run-1's start job: the run is cancelled, nothing starts
    approval = stack.get("demo-approval-1")
    assert approval["status"] == "completed"
    assert approval["outputs"]["provision_access"] == {"granted": True, "by": "lin@example.com"}
    assert stack.get("demo-run-1")["status"] == "cancelled"
    assert stack.get("demo-run-1")["nodes"].get("validate") != "completed"


def test_fifo_queue_defers_a_sleeping_job_by_visibility(
    aws: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FIFO queues have no per-message delay: a parked job comes straight back, is reported
    failed with its visibility set to its wake time, and runs once it is due."""
    stack = make_stack(monkeypatch, QueueSpec(fifo=True))
    try:
        run_id = stack.start("sleepy")
        assert stack.run_worker(stack.receive_exactly(1)) == []  # submit runs; the sleep parks
        parked = stack.receive_exactly(1)
        assert json.loads(parked[0]["Body"])["nodeId"] == "pause"
        assert stack.run_worker(parked) == [parked[0]["MessageId"]]  # not due: deferred
        assert stack.receive() == []  # invisible until its wake time
        deadline = time.monotonic() + 10
        while stack.get(run_id)["status"] != "completed" and time.monotonic() < deadline:
            time.sleep(0.3)
            messages = stack.receive()
            if messages:
                stack.run_worker(messages)
        body = stack.get(run_id)
        assert body["status"] == "completed"
        assert body["nodes"]["pause"] == "completed"
    finally:
        config.reset()
