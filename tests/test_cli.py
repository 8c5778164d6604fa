"""The ``flowcraft`` command line against the local stack: API server, SQS worker, DynamoDB.

One local stack for the module (``FLOWCRAFT_APP=tests.handler_app``, tiny blueprints), on the
session's moto server; each command runs in-process through click's runner, exactly as the
console script calls it, with ``--api`` pointing at the local server (unsigned, as for
``make up``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from flowcraft_core.cli.main import EXIT_AWAITING, EXIT_FAILED, cli
from flowcraft_core.client import Conflict, FlowcraftClient, NotFound
from handlers import config
from local.emulator import Emulator
from local.stack import LocalStack
from tests.handler_app import SAMPLE_CONTEXT

#: Metric documents off: the worker threads would print them between tests, into the report.
APP_ENV = {
    "FLOWCRAFT_APP": "tests.handler_app",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_DISABLED": "true",
}


@pytest.fixture(scope="module")
def api_url(emulator: Emulator) -> Iterator[str]:
    saved = {key: os.environ.get(key) for key in APP_ENV}
    os.environ.update(APP_ENV)
    config.reset()
    stack = LocalStack(
        prefix="cli",
        api_port=0,
        max_batching_window_s=0,
        run_reconciler=False,
        count_aws_calls=False,
    )
    with stack:
        assert stack.api_url is not None
        yield stack.api_url
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    config.metrics.clear_metrics()  # disabled metrics are kept, not printed: drop them
    config.reset()


def flowcraft(api_url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--api", api_url, *args], catch_exceptions=False)


def printed(result: Result) -> str:
    """What the command printed, without metric documents a local worker thread wrote meanwhile.

    (The runner captures the process's stdout, and Powertools prints a held metric set once it
    reaches 100 values even with metrics disabled.)
    """
    lines = result.output.splitlines(keepends=True)
    return "".join(line for line in lines if not line.startswith('{"_aws"'))


def start(api_url: str, blueprint: str, *args: str) -> str:
    result = flowcraft(api_url, "start", blueprint, "-q", *args)
    assert result.exit_code == 0, result.output
    return printed(result).strip()


def test_start_wait_prints_the_completed_run_and_exits_0(api_url: str, tmp_path: Path) -> None:
    context = tmp_path / "order.json"
    context.write_text(json.dumps(SAMPLE_CONTEXT))
    result = flowcraft(api_url, "start", "order", "--context", f"@{context}", "--wait", "--poll",
                       "0.1", "--run-id", "cli-order-1")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "started run cli-order-1 of order" in result.output
    assert "run completed" in result.output  # the progress line of a non-terminal
    assert "ship" in result.output and '"carrier":"standard"' in result.output

    shown = flowcraft(api_url, "get", "cli-order-1", "--json")
    assert shown.exit_code == 0
    body = json.loads(printed(shown))
    assert body["status"] == "completed" and body["runId"] == "cli-order-1"
    assert body["outputs"]["ship"] == {"carrier": "standard", "charged": 21.0}

    listed = flowcraft(api_url, "runs", "--status", "completed", "--json")
    rows = [json.loads(line) for line in printed(listed).splitlines()]
    assert rows[0]["runId"] == "cli-order-1" and rows[0]["status"] == "completed"
    table = flowcraft(api_url, "runs", "--blueprint", "order", "--limit", "5")
    assert "cli-order-1" in table.output and "completed" in table.output


def test_awaiting_run_is_resumed_and_watched_to_completion(api_url: str) -> None:
    result = flowcraft(api_url, "start", "approval", "--wait", "--poll", "0.1")
    assert result.exit_code == EXIT_AWAITING, result.output
    run_id = result.output.split("started run ", 1)[1].split()[0]
    assert f"flowcraft resume {run_id}" in result.output

    resumed = flowcraft(api_url, "resume", run_id, "--action", "approve", "--output",
                        '{"approver": "lin"}')  # fmt: skip
    assert resumed.exit_code == 0, resumed.output
    assert f"resumed run {run_id} at manager_approval" in resumed.output

    watched = flowcraft(api_url, "watch", run_id, "--poll", "0.1", "--timeout", "20")
    assert watched.exit_code == 0, watched.output
    assert "provision_access" in watched.output and '"by":"lin"' in watched.output


def test_failed_run_exits_non_zero_and_shows_the_error(api_url: str) -> None:
    result = flowcraft(api_url, "start", "flaky", "--wait", "--poll", "0.1")
    assert result.exit_code == EXIT_FAILED
    assert "card declined" in result.output


def test_cancel_then_cancel_again_is_refused_with_the_api_message(api_url: str) -> None:
    run_id = start(api_url, "approval")
    first = flowcraft(api_url, "cancel", run_id)
    assert first.exit_code == 0 and f"cancelled run {run_id}" in first.output
    again = flowcraft(api_url, "cancel", run_id)
    assert again.exit_code == EXIT_FAILED
    assert "409" in again.output and "cancelled" in again.output


def test_graph_colours_the_blueprint_by_status(api_url: str, tmp_path: Path) -> None:
    run_id = start(api_url, "order", "--context", json.dumps(SAMPLE_CONTEXT))
    FlowcraftClient(api_url).wait(run_id, poll_s=0.1, timeout_s=20)
    out = tmp_path / "order.mmd"
    result = CliRunner(env={"FLOWCRAFT_APP": "tests.handler_app"}).invoke(
        cli, ["--api", api_url, "graph", run_id, "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    diagram = out.read_text()
    assert diagram.startswith("flowchart TD")
    assert "-->" in diagram  # edges: the blueprint came from the app module
    assert "class n0 completed" in diagram


def test_mistakes_are_one_line_with_the_api_message(api_url: str) -> None:
    missing = flowcraft(api_url, "get", "no-such-run")
    assert missing.exit_code == EXIT_FAILED and "404" in missing.output
    unknown = flowcraft(api_url, "start", "nope")
    assert unknown.exit_code == EXIT_FAILED and "unknown blueprint 'nope'" in unknown.output
    bad = flowcraft(api_url, "start", "order", "--context", "[1]")
    assert bad.exit_code == 2 and "--context must be a JSON object" in bad.output
    typo = flowcraft(api_url, "start", "order", "--context", "{oops")
    assert typo.exit_code == 2 and "not valid JSON" in typo.output
    down = flowcraft("http://127.0.0.1:9", "get", "x")
    assert down.exit_code == EXIT_FAILED and "cannot reach the Flowcraft API" in down.output


def test_client_raises_errors_that_carry_the_api_message(api_url: str) -> None:
    client = FlowcraftClient(api_url)
    with pytest.raises(NotFound) as missing:
        client.get("no-such-run")
    assert missing.value.status == 404 and "no-such-run" in missing.value.message
    run_id = client.start("approval").run_id
    with pytest.raises(Conflict) as conflict:
        client.resume(run_id, action="approve")  # not awaiting yet, or awaiting: either way
        client.resume(run_id, action="approve")
    assert conflict.value.status == 409
    runs = list(client.iter_runs(blueprint_id="approval", limit=1))
    assert len(runs) == 1 and runs[0].blueprint_id == "approval"
