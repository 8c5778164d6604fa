"""``local.stack.LocalStack`` assembles emulator, settings, API, poller and timer in-process."""

from __future__ import annotations

import json
import os
import threading
import urllib.request
from typing import Any

import boto3

from local.emulator import Emulator
from local.stack import LocalStack


def test_stack_wires_api_queue_worker_and_timer(aws: Emulator) -> None:
    worked = threading.Event()
    bodies: list[str] = []
    ticks = threading.Event()

    def api(event: dict[str, Any], context: Any) -> dict[str, Any]:
        # Reads its settings from the environment, as the real handler does.
        boto3.client("sqs").send_message(
            QueueUrl=os.environ["FLOWCRAFT_QUEUE_URL"], MessageBody=event["body"]
        )
        return {"statusCode": 202, "body": json.dumps({"queued": True})}

    def worker(event: dict[str, Any], context: Any) -> dict[str, Any]:
        bodies.extend(r["body"] for r in event["Records"])
        worked.set()
        return {"batchItemFailures": []}

    def reconciler(event: dict[str, Any], context: Any) -> dict[str, int]:
        ticks.set()
        return {"scanned_items": 0}

    assert "FLOWCRAFT_QUEUE_URL" not in os.environ
    with LocalStack(
        prefix="stk",
        api_port=0,
        max_batching_window_s=0,
        reconcile_every_s=0.1,
        worker_handler=worker,
        api_handler=api,
        reconciler_handler=reconciler,
    ) as stack:
        assert stack.emulator is not None and not stack.emulator.owned  # reused the session's
        assert os.environ["FLOWCRAFT_STATUS_TABLE"] == "stk-statuses"
        assert stack.api_url is not None
        request = urllib.request.Request(
            f"{stack.api_url}/runs", data=b'{"blueprintId": "b"}', method="POST"
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 202
        assert worked.wait(5)
        assert ticks.wait(2)
        assert "stk-jobs" in stack.describe()
    assert bodies == ['{"blueprintId": "b"}']
    assert stack.event_source is not None and stack.event_source.stats.deleted == 1
    assert stack.aws_calls is not None and stack.aws_calls.by_operation()["sqs.SendMessage"] == 1
    assert "FLOWCRAFT_QUEUE_URL" not in os.environ  # environment restored
    assert os.environ["AWS_ENDPOINT_URL"] == aws.endpoint
