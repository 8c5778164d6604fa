"""``make up``'s default output: one short line per run event, no JSON records, no metrics."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

from local.__main__ import build_parser
from local.console import EventLines, RunNarrator, WithoutMetricDocuments


def view(status: str, nodes: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {
        "runId": "r-1",
        "blueprintId": "order",
        "status": status,
        "nodes": nodes,
        "timeline": [{"node": "a", "attempts": 2}],
        "createdAt": 100.0,
        "updatedAt": 101.5,
        **extra,
    }


def lines(stream: io.StringIO) -> list[str]:
    return [line[10:] for line in stream.getvalue().splitlines()]  # without the clock


def test_worker_calls_become_node_and_run_lines() -> None:
    views = iter(
        [
            view("running", {"a": "completed"}),
            view("running", {"a": "completed"}),  # nothing new: no line
            view(
                "failed",
                {"a": "completed", "b": "failed"},
                error="node 'b': boom",
                createdAt="2026-12-04T12:00:00.000Z",  # ISO 8601 as well as epoch seconds
                updatedAt="2026-12-04T12:00:01.500Z",
            ),
        ]
    )
    out = io.StringIO()
    narrator = RunNarrator(out, view=lambda run_id: next(views))
    worker = narrator.worker(lambda event, context: {"batchItemFailures": []})
    batch = {"Records": [{"body": json.dumps({"runId": "r-1", "nodeId": "a"})}]}
    for _ in range(3):
        worker(batch, None)
    assert lines(out) == [
        "run r-1  order      node a completed (2 attempts)",
        "run r-1  order      node b failed",
        "run r-1  order      failed in 1.5 s: node 'b': boom",
    ]


def test_api_calls_that_change_runs_get_a_line_and_reads_do_not() -> None:
    out = io.StringIO()
    narrator = RunNarrator(out, view=lambda run_id: None)

    def answer(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"statusCode": 202, "body": json.dumps({"runId": "r-9", "status": "running"})}

    api = narrator.api(answer)
    api({"httpMethod": "POST", "path": "/runs", "body": '{"blueprintId": "order"}'}, None)
    api({"httpMethod": "GET", "path": "/runs/r-9"}, None)
    api({"httpMethod": "POST", "path": "/runs/r-9/cancel"}, None)
    assert lines(out) == ["run r-9  order      started", "run r-9  cancelled"]


def test_log_records_keep_warnings_and_retries_only() -> None:
    handler = EventLines(io.StringIO())

    def record(level: int, message: str, name: str = "flowcraft") -> logging.LogRecord:
        return logging.LogRecord(name, level, __file__, 1, message, None, None)

    assert handler.line(record(logging.INFO, "job done")) is None
    assert handler.line(record(logging.INFO, "reconciliation pass done")) is None
    retry = handler.line(record(logging.INFO, "a attempt 1 failed (X); retrying in 0.100s"))
    assert retry is not None and retry.endswith(
        "retry     a attempt 1 failed (X); retrying in 0.100s"
    )
    warning = handler.line(record(logging.WARNING, "run r failed: node 'b': boom\ntraceback"))
    assert warning is not None and warning.endswith("warning   run r failed: node 'b': boom")
    idle = record(logging.INFO, "reconciliation pass done")
    idle.stats = {"stalled_runs": 0, "reconciled_runs": 0, "failed_runs": 0}
    assert handler.line(idle) is None
    busy = record(logging.INFO, "reconciliation pass done")
    busy.stats = {"stalled_runs": 2, "reconciled_runs": 2, "failed_runs": 0}
    line = handler.line(busy)
    assert line is not None and line.endswith("reconciler resumed 2 stalled run(s), failed 0")
    started = handler.line(record(logging.INFO, "running", name="flowcraft.local.up"))
    assert started is not None and started.endswith("running")


def test_metric_documents_are_dropped_from_stdout() -> None:
    target = io.StringIO()
    stdout = WithoutMetricDocuments(target)
    stdout.write('{"_aws": {"CloudWatchMetrics": []}, "NodesExecuted": [1]}\nhello\n')
    stdout.write("partial")
    stdout.flush()
    assert target.getvalue() == "hello\npartial"


def test_up_takes_verbose_after_the_subcommand_too() -> None:
    assert build_parser().parse_args(["up", "--verbose"]).up_verbose is True
    assert build_parser().parse_args(["-v", "up"]).verbose is True
