"""``retry_loop``: start a job, then poll it until it is ready (at most five polls).

What it shows: the built-in ``loop`` node. While ``condition`` holds it answers ``continue``
(into the body, ``poll_status``, whose edge leads back to the loop); otherwise, or after
``maxIterations`` passes, it answers ``break``. Each pass is a separate iteration, so the
timeline lists ``poll_status`` once per pass.
"""

from __future__ import annotations

from typing import Any

from flowcraft_core import NodeContext, NodeResult

#: The simulated export becomes ready on this poll.
READY_AFTER_POLLS = 3

SAMPLE_CONTEXT: dict[str, Any] = {"report": "monthly-usage", "month": "2024-05"}


async def start_export(ctx: NodeContext) -> NodeResult:
    """Kick off a (simulated) long-running export and reset the poll state."""
    job_id = f"export-{await ctx.context.get('report')}-{await ctx.context.get('month')}"
    await ctx.context.set("jobId", job_id)
    await ctx.context.set("ready", False)
    await ctx.context.set("polls", 0)
    return NodeResult(output={"jobId": job_id})


async def poll_export(ctx: NodeContext) -> NodeResult:
    """One poll; state lives in the run context because each pass is a fresh node execution."""
    polls = int(await ctx.context.get("polls", 0)) + 1
    ready = polls >= READY_AFTER_POLLS
    await ctx.context.set("polls", polls)
    await ctx.context.set("ready", ready)
    return NodeResult(output={"poll": polls, "ready": ready})


async def report_export(ctx: NodeContext) -> NodeResult:
    """After the loop: say whether the export finished or the loop gave up."""
    ready = bool(await ctx.context.get("ready"))
    return NodeResult(
        output={
            "jobId": await ctx.context.get("jobId"),
            "status": "ready" if ready else "gave up",
            "polls": await ctx.context.get("polls"),
        }
    )


REGISTRY: dict[str, Any] = {
    "start_export": start_export,
    "poll_export": poll_export,
    "report_export": report_export,
}

BLUEPRINT: dict[str, Any] = {
    "id": "retry_loop",
    "metadata": {"version": "1", "description": "a bounded polling loop with the loop built-in"},
    "nodes": [
        {"id": "start_export", "uses": "start_export"},
        {
            "id": "until_ready",
            "uses": "loop",
            "params": {"condition": "context.ready == false", "maxIterations": 5},
        },
        {"id": "poll_status", "uses": "poll_export"},
        {"id": "report", "uses": "report_export"},
    ],
    "edges": [
        {"source": "start_export", "target": "until_ready"},
        {"source": "until_ready", "target": "poll_status", "action": "continue"},
        {"source": "poll_status", "target": "until_ready"},
        {"source": "until_ready", "target": "report", "action": "break"},
    ],
}
