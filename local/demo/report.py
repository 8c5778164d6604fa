"""Reporting: diagrams and the printed summary of each run."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from flowcraft_core import generate_mermaid
from flowcraft_core.analysis import diagram_statuses
from flowcraft_core.client.models import as_datetime
from flowcraft_core.scheduler import split_key
from flowcraft_core.status import COMPLETED, FAILED, SKIPPED
from local.demo.base import Json
from local.demo.ledger import RUN
from local.demo.running import RunReport, _compact
from workflows import blueprints


def run_diagram_statuses(run: Json) -> dict[str, str]:
    """Node statuses to colour the diagram of a run (its ``GET /runs/{runId}`` answer) by."""
    return diagram_statuses(run.get("nodes") or {}, run.get("timeline") or [])


def write_diagram(report: RunReport, out: Path) -> None:
    if report.run is None:
        return
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{report.example.blueprint_id}.mmd"
    blueprint = blueprints[report.example.blueprint_id]
    path.write_text(generate_mermaid(blueprint, run_diagram_statuses(report.run)), encoding="utf-8")
    report.diagram = path


def describe(report: RunReport) -> list[str]:
    """The result block of one run."""
    example, run = report.example, report.run or {}
    mark = "ok" if report.ok else "UNEXPECTED"
    lines = [
        f"{example.blueprint_id}: {run.get('status', 'unknown')} [{mark}] "
        f"in {report.elapsed_s:.1f} s, run {report.run_id}"
    ]
    created = run.get("createdAt")
    outputs: Json = run.get("outputs") or {}
    timeline: list[Json] = run.get("timeline") or []
    width = max([len(t["node"]) for t in timeline] + [4])
    # ``outputs`` holds each node's latest output: show it on that instance's row only.
    latest = {split_key(t["node"])[0]: t["node"] for t in timeline if t["status"] == COMPLETED}
    for entry in timeline:
        finished = entry.get("finishedAt")
        start, end = as_datetime(created), as_datetime(finished)
        offset = (
            f"+{(end - start).total_seconds() * 1000:6.0f} ms"
            if start is not None and end is not None
            else "         -"
        )
        status = entry["status"]
        attempts = "" if status == SKIPPED else f"x{entry.get('attempts') or 1}"
        output = ""
        node_id = split_key(entry["node"])[0]
        if latest.get(node_id) == entry["node"] and node_id in outputs:
            output = _compact(outputs[node_id])
        lines.append(f"  {offset}  {entry['node']:<{width}}  {status:<9} {attempts:<3} {output}")
    lines.append(_requests_line(report))
    if report.diagram is not None:
        lines.append(f"  diagram: {report.diagram}")
    lines += [f"  !! {problem}" for problem in report.problems]
    return lines


def _requests_line(report: RunReport) -> str:
    by_role: Counter[str] = Counter()
    run_ops: Counter[str] = Counter()
    for (role, operation), n in report.requests.items():
        by_role[role] += n
        if role == RUN:
            run_ops[operation] += n
    executed = sum(
        1 for t in (report.run or {}).get("timeline") or [] if t["status"] in (COMPLETED, FAILED)
    )
    nodes = f"{executed} node{'s' if executed != 1 else ''} executed"
    per_node = f", {by_role[RUN] / executed:.1f} per node" if executed else ""
    ops = ", ".join(f"{op} {n}" for op, n in run_ops.most_common())
    side = ", ".join(f"{n} {role}" for role, n in by_role.items() if role != RUN)
    return f"  AWS requests: {by_role[RUN]} by the run ({nodes}{per_node}): {ops}" + (
        f"\n                also during it: {side}" if side else ""
    )
