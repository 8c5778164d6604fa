"""How the command line shows runs: tables, a one-screen summary, and live progress.

Kept apart from the commands so the wording of the output lives in one place. Live progress
redraws in place on a terminal (rich ``Live``) and prints one line per change otherwise, so a
CI log or a pipe gets a readable history instead of escape codes.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ..client.models import SETTLED_NODE_STATUSES, Run, RunSummary, as_datetime
from ..status import (
    AWAITING,
    CANCELLED,
    COMPLETED,
    FAILED,
    RETRYING,
    RUNNING,
    SKIPPED,
    SLEEPING,
    WAITING,
)

STYLES: dict[str, str] = {
    COMPLETED: "green",
    FAILED: "bold red",
    RUNNING: "cyan",
    RETRYING: "dark_orange",
    AWAITING: "yellow",
    WAITING: "yellow",
    SLEEPING: "yellow",
    SKIPPED: "dim",
    CANCELLED: "magenta",
}


def styled(status: str) -> Text:
    return Text(status, style=STYLES.get(status, ""))


def when(value: Any) -> str:
    moment = as_datetime(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S") + "Z" if moment else "-"


def compact(value: Any, width: int = 60) -> str:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    return text if len(text) <= width else text[: width - 3] + "..."


def runs_table(runs: list[RunSummary]) -> Table:
    table = Table(box=None, header_style="bold")
    for column in ("RUN ID", "BLUEPRINT", "STATUS", "CREATED (UTC)", "UPDATED (UTC)"):
        table.add_column(column, no_wrap=True)
    for run in runs:
        table.add_row(
            run.run_id,
            run.blueprint_id,
            styled(run.status),
            when(run.created_at),
            when(run.updated_at),
        )
    return table


def run_view(run: Run) -> Group:
    """``flowcraft get``: the run, then one row per node with its output."""
    head = Text.assemble(
        ("run ", "bold"),
        (run.run_id, "bold"),
        f"  {run.blueprint_id}  ",
        styled(run.status),
        f"  created {when(run.created_at)}  updated {when(run.updated_at)}",
    )
    parts: list[Any] = [head]
    if run.error:
        parts.append(Text(f"error: {run.error}", style="red"))
    attempts = {
        str(entry.get("node")): entry.get("attempts") for entry in run.timeline or [] if entry
    }
    table = Table(box=None, header_style="bold")
    for column in ("NODE", "STATUS", "ATTEMPTS", "OUTPUT"):
        table.add_column(column, no_wrap=column != "OUTPUT")
    outputs = run.outputs or {}
    for node_id, status in run.node_statuses.items():
        output = compact(outputs[node_id]) if node_id in outputs else ""
        table.add_row(node_id, styled(status), str(attempts.get(node_id) or ""), output)
    if run.node_statuses:
        parts.append(table)
    return Group(*parts)


def elapsed_since(run: Run, fallback: float) -> float:
    created = as_datetime(run.created_at)
    if created is None:
        return time.monotonic() - fallback
    return max(0.0, (datetime.now(UTC) - created).total_seconds())


def progress_line(run: Run, total: int | None, elapsed_s: float) -> Text:
    """``order  running  3/7 nodes done  running: charge  retrying: ship  12.4 s``."""
    statuses = run.node_statuses
    done = sum(1 for s in statuses.values() if s in SETTLED_NODE_STATUSES)
    of = f"/{total}" if total else ""
    text = Text.assemble(
        (run.blueprint_id, "bold"), "  ", styled(run.status), f"  {done}{of} nodes done"
    )
    by_status: dict[str, list[str]] = {}
    for node_id, status in statuses.items():
        if status not in SETTLED_NODE_STATUSES:
            by_status.setdefault(status, []).append(node_id)
    for status in sorted(by_status):
        text.append("  ")
        text.append(f"{status}: ", style=STYLES.get(status, ""))
        text.append(", ".join(by_status[status]))
    text.append(f"  {elapsed_s:.1f} s", style="dim")
    return text


class Watcher:
    """Follows a run's polls: redraws on a terminal, prints changes otherwise."""

    def __init__(self, console: Console, total: int | None) -> None:
        self.console = console
        self.total = total
        self.started = time.monotonic()
        self._seen: dict[str, str] = {}
        self._status: str | None = None
        self._live: Live | None = None

    def __enter__(self) -> Watcher:
        if self.console.is_terminal:
            self._live = Live(console=self.console, refresh_per_second=8, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)

    def update(self, run: Run) -> None:
        elapsed = elapsed_since(run, self.started)
        if self._live is not None:
            self._live.update(progress_line(run, self.total, elapsed))
            return
        for node_id, status in run.node_statuses.items():
            if self._seen.get(node_id) != status:
                self._seen[node_id] = status
                self.console.print(Text.assemble(f"{elapsed:7.1f} s  {node_id}  ", styled(status)))
        if run.status != self._status:
            self._status = run.status
            counts = Counter(s in SETTLED_NODE_STATUSES for s in run.node_statuses.values())
            of = f"/{self.total}" if self.total else ""
            self.console.print(
                Text.assemble(
                    f"{elapsed:7.1f} s  run ",
                    styled(run.status),
                    f"  ({counts[True]}{of} nodes done)",
                )
            )
