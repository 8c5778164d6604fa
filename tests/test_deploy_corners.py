"""Corners where the deployed API, the local stack and the queue must agree with AWS.

Covered here:

* run ids that reach the API percent-encoded in the path (API Gateway REST hands the function the
  *raw* path, ``/runs/order%3A42``, and the decoded value only in ``pathParameters``), including
  the child run ids of subflows in loops (``parent--node#2``, sent as ``%23``);
* the local HTTP server building the same event API Gateway builds for such a path;
* request values that are valid JSON but that DynamoDB cannot store (numbers beyond its 38 digits
  or its exponent range, ``NaN``, lone UTF-16 surrogates): a client error that must be refused
  before anything is written, on start and on resume;
* FIFO job queues and run ids up to the 200 characters the API accepts (deduplication ids and
  message group ids are limited to 128 characters by SQS);
* FIFO deferral of a long sleep (SQS caps a message's total invisibility at 12 hours);
* the API Gateway request model of ``POST /runs`` accepting every body the OpenAPI document and
  the function accept;
* the OpenAPI document's server URL resolving to the stage the document is served from;
* ``python -m local up --batch-size N`` for batch sizes the stack itself deploys.

This module is also a tiny ``FLOWCRAFT_APP`` (``blueprints`` / ``registry`` below) for the long
sleep test.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urljoin

import boto3
import pytest

from flowcraft_core import NodeContext, NodeResult
from flowcraft_core.aws.schema import QueueSpec
from handlers import api, config
from local.api_server import build_event
from local.emulator import Emulator
from local.stack import LocalStack
from tests.test_handlers import FakeContext, Stack, make_stack, proxy_event, stack
from tests.test_handlers_api import assert_untouched

__all__ = ["stack"]  # the fixture, imported for this module's tests

# ------------------------------------------------------------------ this module as FLOWCRAFT_APP

THIRTEEN_HOURS_MS = 13 * 3600 * 1000


def submit(ctx: NodeContext) -> NodeResult:
    return NodeResult(output={"submitted": True})


def remind(ctx: NodeContext) -> NodeResult:
    return NodeResult(output={"reminded": True})


registry: dict[str, Any] = {"submit": submit, "remind": remind}
blueprints: dict[str, dict[str, Any]] = {
    "overnight": {
        "id": "overnight",
        "nodes": [
            {"id": "submit", "uses": "submit"},
            {"id": "pause", "uses": "sleep", "params": {"duration": THIRTEEN_HOURS_MS}},
            {"id": "remind", "uses": "remind"},
        ],
        "edges": [
            {"source": "submit", "target": "pause"},
            {"source": "pause", "target": "remind"},
        ],
    }
}
THIS_APP = __name__


# ------------------------------------------------------------------ helpers


def api_gateway_event(method: str, raw_path: str, run_id: str) -> dict[str, Any]:
    """What API Gateway (REST, proxy) sends for a request whose path is ``raw_path`` as typed:
    ``path`` keeps the percent-encoding, ``pathParameters`` holds the decoded value."""
    event = proxy_event(method, raw_path)
    event["pathParameters"] = {"runId": run_id}
    event["requestContext"]["path"] = f"/prod{raw_path}"
    return event


def call(event: dict[str, Any]) -> tuple[int, Any]:
    response = api.handler(event, FakeContext())
    return response["statusCode"], json.loads(response["body"]) if response["body"] else None


def status_row(stack: Stack, run_id: str) -> dict[str, Any]:
    item = stack.dynamodb.get_item(
        TableName=stack.settings["FLOWCRAFT_STATUS_TABLE"], Key={"runId": {"S": run_id}}
    ).get("Item")
    assert item is not None
    return dict(item)


@pytest.fixture
def fifo_stack(aws: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    yield make_stack(monkeypatch, QueueSpec(fifo=True))
    config.reset()


# ------------------------------------------------------------------ percent-encoded run ids


@pytest.mark.parametrize(
    ("run_id", "encoded"),
    [
        ("order:42", "order%3A42"),  # encodeURIComponent / quote(safe="") encode ':'
        ("parent--ask#2", "parent--ask%232"),  # a subflow child in a loop (records.py)
    ],
)
def test_percent_encoded_run_id_in_the_path_reaches_the_run(
    stack: Stack, run_id: str, encoded: str
) -> None:
    # Started the way the API (':') or a parent's subflow node ('#') starts it.
    config.adapter().client.start("order", {}, run_id=run_id)

    status, body = call(api_gateway_event("GET", f"/runs/{encoded}", run_id))
    assert status == 200, body
    assert body["runId"] == run_id

    status, body = call(api_gateway_event("POST", f"/runs/{encoded}/cancel", run_id))
    assert (status, body) == (202, {"runId": run_id, "status": "cancelled"})


def test_local_api_event_keeps_the_raw_path_like_api_gateway() -> None:
    event = build_event(
        method="POST",
        raw_path="/runs/parent--ask%232/cancel",
        headers=[("Host", "127.0.0.1:3000")],
        body=b"",
        source_ip="127.0.0.1",
    )
    assert event["resource"] == "/runs/{runId}/cancel"
    assert event["pathParameters"] == {"runId": "parent--ask#2"}
    # API Gateway REST passes the path as the client sent it (still percent-encoded).
    assert event["path"] == "/runs/parent--ask%232/cancel"


# ------------------------------------------------------------------ values DynamoDB cannot store


@pytest.mark.parametrize(
    "raw",
    [
        '{"blueprintId": "order", "context": {"id": 123456789012345678901234567890123456789012}}',
        '{"blueprintId": "order", "context": {"ratio": 1e200}}',
        '{"blueprintId": "order", "context": {"ratio": NaN}}',
        '{"blueprintId": "order", "context": {"name": "cut emoji \\ud83d"}}',
    ],
    ids=["42-digit-int", "1e200", "NaN", "lone-surrogate"],
)
def test_start_with_a_context_dynamodb_cannot_store_is_a_400_that_writes_nothing(
    stack: Stack, raw: str
) -> None:
    status, body = stack.call_api("POST", "/runs", raw=raw)
    assert status == 400, body
    assert "context" in body["message"]
    assert_untouched(stack)


def test_resume_with_an_output_dynamodb_cannot_store_is_a_400_and_the_run_stays_awaiting(
    stack: Stack,
) -> None:
    stack.start("approval", runId="ask-nan")
    stack.drain()
    assert stack.get("ask-nan")["status"] == "awaiting"

    status, body = stack.call_api(
        "POST", "/runs/ask-nan/resume", raw='{"action": "approve", "output": NaN}'
    )

    assert status == 400, body
    assert stack.get("ask-nan")["status"] == "awaiting"
    row = status_row(stack, "ask-nan")
    assert row["status"] == {"S": "awaiting"}  # not flipped to running by a refused request
    assert "activeShard" not in row


# ------------------------------------------------------------------ FIFO queues and long run ids


def test_fifo_jobs_of_a_run_with_a_long_id_are_not_deduplicated_away(fifo_stack: Stack) -> None:
    run_id = "r" * 127  # the API accepts up to 200 characters
    status, _ = fifo_stack.call_api("POST", "/runs", {"blueprintId": "sleepy", "runId": run_id})
    assert status == 202

    assert fifo_stack.run_worker(fifo_stack.receive_exactly(1)) == []  # submit runs

    # Its successor (the parked sleep) is a different job and must be on the queue.
    bodies = [json.loads(m["Body"]) for m in fifo_stack.receive()]
    assert [b["nodeId"] for b in bodies] == ["pause"]


def test_fifo_message_ids_fit_sqs_limits_for_every_run_id_the_api_accepts(
    fifo_stack: Stack,
) -> None:
    from flowcraft_core.aws.clients import sqs_client

    sent: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        sent.extend(params.get("Entries", []))

    sqs_client().meta.events.register("provide-client-params.sqs.SendMessageBatch", record)
    status, _ = fifo_stack.call_api("POST", "/runs", {"blueprintId": "order", "runId": "g" * 200})
    assert status == 202
    assert sent
    for entry in sent:
        assert len(entry["MessageGroupId"]) <= 128  # SQS refuses longer group ids
        assert len(entry["MessageDeduplicationId"]) <= 128


def test_fifo_sleep_longer_than_twelve_hours_stays_parked(
    aws: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = make_stack(monkeypatch, QueueSpec(fifo=True, visibility_timeout_seconds=1))
    monkeypatch.setenv("FLOWCRAFT_APP", THIS_APP)
    config.reset()
    try:
        status, _ = stack.call_api("POST", "/runs", {"blueprintId": "overnight", "runId": "n-1"})
        assert status == 202
        assert stack.run_worker(stack.receive_exactly(1)) == []  # submit; the sleep parks
        parked = stack.receive_exactly(1)
        assert json.loads(parked[0]["Body"])["nodeId"] == "pause"
        assert stack.run_worker(parked) == [parked[0]["MessageId"]]  # deferred by visibility

        time.sleep(1.5)  # longer than the queue's own visibility timeout
        # Not due for 13 hours: it must stay invisible as long as SQS allows, not come back
        # after the visibility timeout and spend a receive (maxReceiveCount) each time.
        assert stack.receive() == []
    finally:
        config.reset()


# ------------------------------------------------------------------ API Gateway's request model


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    from aws_cdk.assertions import Template

    import app as cdk_app
    from tests.test_stack import context

    _, deployed = cdk_app.build_app(context())
    return dict(Template.from_stack(deployed).to_json())


def test_gateway_start_model_accepts_what_the_openapi_document_and_the_function_accept(
    template: dict[str, Any],
) -> None:
    import jsonschema

    body = {"blueprintId": "order", "context": {"a": 1}, "runId": None}
    api.StartRunRequest.model_validate(body)  # the function accepts it
    document = json.loads(api.openapi_json())
    jsonschema.validate(body, document["components"]["schemas"]["StartRunRequest"])

    models = [
        resource["Properties"]["Schema"]
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::ApiGateway::Model"
        and resource["Properties"].get("Name") == "StartRun"
    ]
    assert len(models) == 1
    errors = [e.message for e in jsonschema.Draft4Validator(models[0]).iter_errors(body)]
    assert errors == []  # API Gateway would answer 400 "Invalid request body" before the function
    # Generated from the function's model: the same length limits and run-id pattern.
    for bad in ({"blueprintId": "x" * 201}, {"blueprintId": "order", "runId": "has space"}):
        assert list(jsonschema.Draft4Validator(models[0]).iter_errors(bad))
        with pytest.raises(ValueError):
            api.StartRunRequest.model_validate(bad)


# ------------------------------------------------------------------ the OpenAPI document


def test_openapi_server_url_resolves_to_the_stage_it_is_served_from() -> None:
    host = "abc123.execute-api.us-east-1.amazonaws.com"
    event = proxy_event("GET", "/openapi.json")
    event["headers"]["Host"] = host
    event["requestContext"]["domainName"] = host
    status, document = call(event)
    assert status == 200

    served_from = f"https://{host}/prod/openapi.json"
    base = urljoin(served_from, document["servers"][0]["url"])
    routes = {urljoin(base.rstrip("/") + "/", path.lstrip("/")) for path in document["paths"]}
    assert f"https://{host}/prod/runs" in routes


# ------------------------------------------------------------------ python -m local up


def test_local_up_accepts_batch_sizes_the_stack_deploys(aws: Emulator) -> None:
    from stacks.settings import Settings

    deployed = Settings.from_context({"flowcraft:batchSize": 20})  # a valid stack setting
    assert deployed.batch_size == 20

    def worker(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"batchItemFailures": []}

    # What `python -m local up --batch-size 20` builds (local/__main__.py passes only these).
    local = LocalStack(
        prefix="bat",
        api_port=0,
        batch_size=deployed.batch_size,
        worker_handler=worker,
        run_api=False,
        run_reconciler=False,
        count_aws_calls=False,
    )
    try:
        local.start()
        assert local.event_source is not None
        assert local.event_source.batch_size == 20
        queue_url = local.settings["FLOWCRAFT_QUEUE_URL"]
        assert boto3.client("sqs").get_queue_url(QueueName="bat-jobs")["QueueUrl"] == queue_url
    finally:
        local.stop()
