"""What ``make up`` prints by default: one short line per event a person follows.

Lambda-style output (Powertools JSON records, EMF metric documents) buries a terminal, so it is
silenced and :class:`RunNarrator` describes what each worker and API call changed instead.
Why it is shaped this way: docs/local.md, 'The quiet console'.
"""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from flowcraft_core.status import AWAITING, FINAL, NODE_DONE

Handler = Callable[[dict[str, Any], Any], Any]

#: Node statuses worth a line (a node that merely started or waits has its own run line).
NODE_EVENTS = NODE_DONE
_METRICS_PREFIX = '{"_aws"'


def _clock() -> str:
    return time.strftime("%H:%M:%S")


class WithoutMetricDocuments(io.TextIOBase):
    """``sys.stdout`` minus Powertools' EMF metric documents (one JSON line per invocation)."""

    def __init__(self, target: TextIO) -> None:
        super().__init__()
        self.target = target
        self._pending = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self._pending += text
            while "\n" in self._pending:
                line, self._pending = self._pending.split("\n", 1)
                if not line.startswith(_METRICS_PREFIX):
                    self.target.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        with self._lock:
            if self._pending and not self._pending.startswith(_METRICS_PREFIX):
                self.target.write(self._pending)
            self._pending = ""
            self.target.flush()

    def isatty(self) -> bool:
        return self.target.isatty()


class EventLines(logging.Handler):
    """Warnings, errors and retries from the ``flowcraft`` loggers, one short line each, and
    the INFO lines of ``always`` loggers (``up``'s own start and stop messages)."""

    def __init__(self, stream: TextIO, always: tuple[str, ...] = ("flowcraft.local.up",)) -> None:
        super().__init__(level=logging.INFO)
        self.stream = stream
        self.always = always

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.line(record)
        except Exception:
            self.handleError(record)
            return
        if line:
            self.stream.write(line + "\n")
            self.stream.flush()

    def line(self, record: logging.LogRecord) -> str | None:
        message = record.getMessage().splitlines()[0] if record.getMessage() else ""
        if record.name in self.always and record.levelno < logging.WARNING:
            return f"{_clock()}  {message[:300]}"
        if record.levelno >= logging.WARNING:
            run = getattr(record, "run_id", None)
            where = f"run {run}  " if run else ""
            return f"{_clock()}  {record.levelname.lower():<10}{where}{message[:300]}"
        if "retrying in" in message:
            return f"{_clock()}  {'retry':<10}{message[:300]}"
        stats = getattr(record, "stats", None)
        if isinstance(stats, dict) and (stats.get("reconciled_runs") or stats.get("failed_runs")):
            return (
                f"{_clock()}  {'reconciler':<11}resumed {stats.get('reconciled_runs', 0)} "
                f"stalled run(s), failed {stats.get('failed_runs', 0)}"
            )
        return None


class _Silenced(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


class RunNarrator:
    """Wraps the worker and API handlers and prints what each call changed in the runs."""

    def __init__(
        self, stream: TextIO, view: Callable[[str], dict[str, Any] | None] | None = None
    ) -> None:
        self.stream = stream
        self._view = view or _run_view
        self._seen: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    # -- wrappers -------------------------------------------------------------------------

    def worker(self, handler: Handler) -> Handler:
        def wrapped(event: dict[str, Any], context: Any) -> Any:
            try:
                return handler(event, context)
            finally:
                for run_id in _runs_in_batch(event):
                    self.describe(run_id)

        return wrapped

    def api(self, handler: Handler) -> Handler:
        def wrapped(event: dict[str, Any], context: Any) -> Any:
            response = handler(event, context)
            try:
                self._api_event(event, response)
            except Exception:  # narration must never break a request
                logging.getLogger("flowcraft.local").debug("narration failed", exc_info=True)
            return response

        return wrapped

    # -- lines ----------------------------------------------------------------------------

    def describe(self, run_id: str) -> None:
        """Print the changes in ``run_id`` since it was last described."""
        try:
            view = self._view(run_id)
        except Exception:
            return
        if view is None:
            return
        with self._lock:
            before = self._seen.get(run_id, {})
            self._seen[run_id] = view
            lines = list(self._changes(run_id, before, view))
        for line in lines:
            self.say(line)

    def _changes(self, run_id: str, before: dict[str, Any], after: dict[str, Any]) -> Any:
        blueprint = str(after.get("blueprintId", "?"))
        prefix = f"run {run_id}  {blueprint:<10} "
        old_nodes: dict[str, Any] = before.get("nodes") or {}
        attempts = {str(t.get("node")): t.get("attempts") for t in after.get("timeline") or [] if t}
        for node_id, value in (after.get("nodes") or {}).items():
            status = value.get("status") if isinstance(value, dict) else value
            old = old_nodes.get(node_id)
            old_status = old.get("status") if isinstance(old, dict) else old
            if status == old_status or status not in NODE_EVENTS:
                continue
            tries = attempts.get(node_id) or 1
            extra = f" ({tries} attempts)" if isinstance(tries, int) and tries > 1 else ""
            yield f"{prefix}node {node_id} {status}{extra}"
        status = after.get("status")
        if status != before.get("status") and (status in FINAL or status == AWAITING):
            took = _took(after)
            error = f": {str(after['error'])[:200]}" if after.get("error") else ""
            yield f"{prefix}{status}{took}{error}"

    def _api_event(self, event: dict[str, Any], response: Any) -> None:
        status = int(response.get("statusCode", 0)) if isinstance(response, dict) else 0
        if event.get("httpMethod") != "POST" or not 200 <= status < 300:
            return
        body = json.loads(response.get("body") or "{}")
        run_id = body.get("runId")
        if not run_id:
            return
        path = str(event.get("path") or "")
        if path.rstrip("/") == "/runs":
            request = json.loads(event.get("body") or "{}")
            self.say(f"run {run_id}  {request.get('blueprintId', '?'):<10} started")
            return
        action = path.rstrip("/").rsplit("/", 1)[-1]
        words = {"resume": "resumed", "cancel": "cancelled", "redrive": "redriven"}
        if action not in words:
            return
        with self._lock:  # a cancel is final already; a resume or redrive runs again
            seen = self._seen.setdefault(run_id, {})
            seen["status"] = "cancelled" if action == "cancel" else "running"
        self.say(f"run {run_id}  {words[action]}")

    def say(self, text: str) -> None:
        self.stream.write(f"{_clock()}  {text}\n")
        self.stream.flush()


def _took(view: dict[str, Any]) -> str:
    """`` in 1.2 s`` (timestamps as epoch seconds or ISO 8601, the forms the view has used)."""
    from flowcraft_core.client.models import as_datetime

    created, updated = as_datetime(view.get("createdAt")), as_datetime(view.get("updatedAt"))
    if created is None or updated is None:
        return ""
    return f" in {(updated - created).total_seconds():.1f} s"


def _runs_in_batch(event: dict[str, Any]) -> list[str]:
    runs: list[str] = []
    for record in event.get("Records") or []:
        try:
            run_id = json.loads(record.get("body") or "{}").get("runId")
        except (ValueError, AttributeError):
            continue
        if isinstance(run_id, str) and run_id not in runs:
            runs.append(run_id)
    return runs


def _run_view(run_id: str) -> dict[str, Any] | None:
    """The run as ``GET /runs/{runId}`` shows it (None if it does not exist)."""
    from flowcraft_core.distributed.errors import RunNotFound
    from handlers import config

    try:
        # Statuses and times only: outputs stay undecoded (no payload reads per batch).
        view: dict[str, Any] = config.adapter().client.get(run_id, outputs=False).to_api()
    except RunNotFound:
        return None
    return view


def install_quiet_console(stream: TextIO | None = None) -> RunNarrator:
    """Short event lines on ``stream`` (stderr) instead of JSON records and metric documents.

    Returns the narrator whose wrappers the local stack puts around the worker and API handlers.
    """
    out = stream or sys.stderr
    from handlers import config

    powertools = config.logger
    for handler in list(logging.getLogger(config.SERVICE).handlers):
        handler.addFilter(_Silenced())
    powertools.addHandler(EventLines(out))
    # The root handler (``python -m local``'s plain format) would repeat every record.
    logging.getLogger(config.SERVICE).propagate = False
    if not isinstance(sys.stdout, WithoutMetricDocuments):
        sys.stdout = WithoutMetricDocuments(sys.stdout)
    return RunNarrator(out)
