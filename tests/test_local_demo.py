"""``local.demo``: its expectations hold in memory, and end to end through the real handlers.

The end-to-end test runs the whole demo in-process against the session's moto server: the
local HTTP server in front of ``handlers.api``, the SQS event source into ``handlers.worker``,
DynamoDB for state. It is the one test that drives every example through the distributed
driver, so it asserts on what the demo checks (exit code 0 means every run ended as expected)
and on the diagrams it writes, never on timings.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from flowcraft_core import FlowRuntime, WorkflowResult
from flowcraft_core.testing import FakeClock
from local import demo
from local.emulator import Emulator
from workflows import blueprints, registry


def api_view(result: WorkflowResult) -> dict[str, Any]:
    """An in-memory result in the shape of ``GET /runs/{runId}`` (the parts ``check`` reads)."""
    return {
        "status": result.status,
        "nodes": result.node_statuses,
        "outputs": result.outputs,
        "timeline": [
            {"node": t.key, "status": t.status, "attempts": t.attempts} for t in result.timeline
        ],
    }


async def run_in_memory(example: demo.Example) -> WorkflowResult:
    runtime = FlowRuntime(registry, blueprints=blueprints, clock=FakeClock())
    result = await runtime.run(example.blueprint_id, example.context)
    if example.resume is not None:
        assert result.status == "awaiting"
        result = await runtime.resume(
            example.blueprint_id,
            result,
            action=example.resume.get("action"),
            output=example.resume.get("output"),
        )
    return result


@pytest.mark.parametrize("example", demo.EXAMPLES, ids=lambda e: e.blueprint_id)
def test_demo_expectations_hold_in_memory(example: demo.Example) -> None:
    """Both drivers must agree, so what the demo expects on AWS must hold in memory too."""
    result = asyncio.run(run_in_memory(example))
    assert demo.check(example, api_view(result)) == []


def test_check_says_what_differs() -> None:
    example = demo.EXAMPLES[0]
    run = {
        "status": "failed",
        "error": "node 'confirm': boom",
        "nodes": {"vip_gift": "skipped", "ship": "completed", "notify": "completed"},
        "outputs": {"notify": {"via": "ship"}},
        "timeline": [{"node": "validate", "status": "completed", "attempts": 1}],
    }
    problems = demo.check(example, run)
    assert problems == [
        "status is 'failed', expected 'completed' (node 'confirm': boom)",
        "node 'vip_gift' is 'skipped', expected 'completed'",
        "node 'ship' is 'completed', expected 'skipped'",
        "node 'validate' took 1 attempt(s), expected 2",
        "output of 'notify': via='ship', expected 'vip_gift'",
    ]
    assert demo.check(example, None) == ["the run was never readable"]


def test_diagram_shows_a_loop_body_that_ran_as_completed() -> None:
    run = {
        "nodes": {"until_ready": "completed", "poll_status": "skipped", "report": "completed"},
        "timeline": [
            {"node": "poll_status", "status": "completed"},
            {"node": "poll_status#1", "status": "skipped"},
        ],
    }
    assert demo.run_diagram_statuses(run)["poll_status"] == "completed"
    never_ran = {"nodes": {"ship": "skipped"}, "timeline": [{"node": "ship", "status": "skipped"}]}
    assert demo.run_diagram_statuses(never_ran)["ship"] == "skipped"


def test_demo_runs_every_example_end_to_end(
    aws: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = demo.main(["--out", str(tmp_path), "--timeout", "30"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    for example in demo.EXAMPLES:
        diagram = (tmp_path / f"{example.blueprint_id}.mmd").read_text()
        assert diagram.startswith("flowchart TD")
        assert "classDef completed" in diagram
    order = (tmp_path / "order.mmd").read_text()
    assert "class n6 skipped" in order  # "ship", the branch the big order did not take
    assert f"{len(demo.EXAMPLES)}/{len(demo.EXAMPLES)} runs as expected" in printed
    assert "POST /runs/" in printed and "/resume" in printed


def test_a_workflow_the_user_adds_runs_too_and_a_removed_example_is_left_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mine = {"id": "mine", "nodes": [{"id": "a", "uses": "a"}]}
    apps_blueprints = {k: v for k, v in blueprints.items() if k != "reminder"}
    from local.demo import examples as known

    monkeypatch.setattr(known, "blueprints", {**apps_blueprints, "mine": mine})
    monkeypatch.setattr(known, "sample_contexts", {**known.sample_contexts, "mine": {"n": 1}})
    examples = {e.blueprint_id: e for e in known._examples()}
    assert "reminder" not in examples
    assert examples["mine"].status is None and examples["mine"].context == {"n": 1}
    assert demo.check(examples["mine"], {"status": "awaiting"}) == []
    assert demo.check(examples["mine"], {"status": "failed", "error": "x"}) == [
        "status is 'failed', expected 'completed' or 'awaiting' (x)"
    ]
