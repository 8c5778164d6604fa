"""Running one example against the local stack, and what it did."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowcraft_core.status import AWAITING, COMPLETED
from local.demo.base import FINAL_STATUSES, OUTPUT_WIDTH, POLL_INTERVAL_S, Json
from local.demo.examples import Example, check
from local.demo.http import Api, ApiError
from local.demo.ledger import RequestLedger


@dataclass
class RunReport:
    """What the demo learnt about one run: its last API view, what differed, its requests."""

    example: Example
    run_id: str | None = None
    run: Json | None = None
    problems: list[str] = field(default_factory=list)
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    elapsed_s: float = 0.0
    diagram: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def run_example(
    api: Api,
    ledger: RequestLedger,
    example: Example,
    timeout_s: float,
    say: Callable[[str], None],
) -> RunReport:
    """Start, watch (and resume) one run until it is final or ``timeout_s`` has passed.

    A run that times out is cancelled, so it cannot go on spending requests (and skewing the
    next run's figures) while the demo moves on.
    """
    report = RunReport(example)
    before = ledger.snapshot()
    started = time.monotonic()
    deadline = started + timeout_s

    def line(text: str) -> None:
        say(f"  {time.monotonic() - started:6.2f}s  {text}")

    say(f"\n> {example.blueprint_id}")
    try:
        answer = api.start(example.blueprint_id, example.context)
        report.run_id = run_id = str(answer["runId"])
        line(f"POST /runs -> 202 runId={run_id} status={answer.get('status')}")
        seen: dict[str, str] = {}
        status = None
        resumed = False
        while True:
            run = report.run = api.get(run_id)
            for entry in run.get("timeline") or []:
                if seen.get(entry["node"]) != entry["status"]:
                    seen[entry["node"]] = entry["status"]
                    line(f"  {entry['node']:<18} {_status_text(entry)}")
            if run.get("status") != status:
                status = run.get("status")
                line(f"run is {status}")
            if status in FINAL_STATUSES:
                break
            if status == AWAITING and example.resume is not None and not resumed:
                code = api.resume(run_id, example.resume)
                resumed = True
                line(f"POST /runs/{run_id[:8]}../resume {_compact(example.resume, 60)} -> {code}")
                continue
            if status == AWAITING and example.resume is None:
                break  # nothing will resume it: it ended here
            if time.monotonic() > deadline:
                report.problems.append(f"timed out after {timeout_s:g} s while {status!r}")
                _cancel(api, run_id, line)
                break
            time.sleep(POLL_INTERVAL_S)
    except (ApiError, urllib.error.URLError, OSError, KeyError) as exc:
        report.problems.append(f"API call failed: {exc}")
    ledger.wait_until_idle(timeout_s=5)
    report.elapsed_s = time.monotonic() - started
    report.requests = _subtract(ledger.snapshot(), before)
    report.problems.extend(check(example, report.run) if not report.problems else [])
    return report


def _cancel(api: Api, run_id: str, line: Callable[[str], None]) -> None:
    try:
        status, _ = api.call("POST", f"/runs/{run_id}/cancel")
        line(f"POST /runs/{run_id[:8]}../cancel -> {status}")
    except (ApiError, urllib.error.URLError, OSError) as exc:
        line(f"cancel failed: {exc}")


def _subtract(
    after: Counter[tuple[str, str]], before: Counter[tuple[str, str]]
) -> Counter[tuple[str, str]]:
    return Counter({key: n - before[key] for key, n in after.items() if n > before[key]})


def _status_text(entry: Json) -> str:
    attempts = entry.get("attempts") or 1
    if entry.get("status") == COMPLETED and attempts > 1:
        return f"completed after {attempts} attempts"
    return str(entry.get("status"))


def _compact(value: Any, width: int = OUTPUT_WIDTH) -> str:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    return text if len(text) <= width else text[: width - 3] + "..."
