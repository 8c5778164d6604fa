"""``python -m local demo``: every example workflow, end to end, on the local stack.

It starts :class:`~local.stack.LocalStack` (its own moto server unless ``AWS_ENDPOINT_URL`` names
one), then drives each example in ``workflows`` through the HTTP API only, exactly as a client of
the deployed API Gateway would: ``POST /runs``, poll ``GET /runs/{runId}``, and for the approval
example ``POST /runs/{runId}/resume`` once the run is ``awaiting``. Every node really goes through
SQS, the worker handler and DynamoDB.

Runs go one after another, not all at once, so the AWS requests each one causes can be attributed
exactly; the whole demo still takes about ten seconds (the reminder sleeps two of them). Requests
are tagged by who made them (see :class:`RequestLedger`), so a run's figure is what the *workflow*
cost (worker invocations plus the API calls that start and resume it), not the demo's own status
polling or the event source's idle long polls, which are reported separately.

At the end it prints, per run: status, a timeline (node, status, attempts, milliseconds since the
run was created, output), and the AWS requests; writes a Mermaid diagram coloured by node status
to ``<out>/<blueprint>.mmd``; and exits 0 only if every run ended as its example expects.

Options (``python -m local.demo --help``): ``--out DIR`` (default ``demo-out``); ``--timeout S``
per run (a run that overruns is cancelled and reported); ``--only ID`` to run some examples;
``--prefix`` for resource names; ``--verbose`` for the stack's logs (otherwise only warnings, so
the output stays readable).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import logging
import os
import sys
import threading
import time
import urllib.error
import urllib.request
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import boto3

from flowcraft_core import generate_mermaid
from flowcraft_core.aws.clients import reset_clients
from flowcraft_core.aws.schema import DEFAULT_PREFIX
from flowcraft_core.client.models import as_datetime
from workflows import blueprints, sample_contexts

Handler = Callable[[dict[str, Any], Any], Any]
Json = dict[str, Any]

FINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})
#: How often the demo reads a run's status. Each read costs the API a DynamoDB read, which is
#: why those reads are counted apart from the run's own requests.
POLL_INTERVAL_S = 0.1
OUTPUT_WIDTH = 72
#: Where the handlers' stdout goes (their Powertools logs and EMF metrics), under ``--out``.
LAMBDA_LOG = "lambda.log"
LOGGERS_TO_QUIET = ("flowcraft", "botocore", "urllib3", "werkzeug", "aws_lambda_powertools")


# --------------------------------------------------------------------------------------------
# What each example should do
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    """One example run and what "ended as expected" means for it.

    The expectations are deliberately about semantics the example exists to show (a retry
    happened, the right branch was skipped, the loop ran three passes), not about every value.
    """

    blueprint_id: str
    context: Json
    #: Sent as ``POST /runs/{id}/resume`` once the run is ``awaiting``.
    resume: Json | None = None
    #: The final status expected; ``None`` (a workflow the demo knows nothing about): it ends
    #: ``completed``, or ``awaiting`` someone's resume.
    status: str | None = "completed"
    #: node id -> status of its latest instance, as ``GET /runs/{id}`` reports it.
    nodes: dict[str, str] = field(default_factory=dict)
    #: node id -> attempts its (first) instance needed.
    attempts: dict[str, int] = field(default_factory=dict)
    #: node id -> number of completed instances (loop passes).
    passes: dict[str, int] = field(default_factory=dict)
    #: node id -> key/value pairs its output must contain.
    outputs: dict[str, Json] = field(default_factory=dict)


def _bundled_examples() -> list[Example]:
    """The bundled examples with what each must show (filtered by :func:`_examples`)."""
    try:
        from workflows.approval import SAMPLE_APPROVAL
    except ImportError:  # the user removed the approval example
        SAMPLE_APPROVAL = {"approver": None}

    def context(blueprint_id: str) -> Json:
        return sample_contexts.get(blueprint_id, {})

    return [
        Example(
            "order",
            context("order"),
            nodes={"vip_gift": "completed", "ship": "skipped", "notify": "completed"},
            attempts={"validate": 2},
            outputs={"notify": {"via": "vip_gift"}},
        ),
        Example(
            "approval",
            context("approval"),
            resume={"action": "approve", "output": SAMPLE_APPROVAL},
            nodes={"provision_access": "completed", "notify_rejection": "skipped"},
            outputs={"provision_access": {"approvedBy": SAMPLE_APPROVAL["approver"]}},
        ),
        Example(
            "thumbnails",
            context("thumbnails"),
            nodes={"resize_all": "completed", "summarize": "completed"},
            outputs={"summarize": {"count": len(context("thumbnails").get("images", []))}},
        ),
        Example(
            "reminder",
            context("reminder"),
            nodes={"wait_a_bit": "completed", "send_reminder": "completed"},
            outputs={"send_reminder": {"sent": True}},
        ),
        Example(
            "onboarding",
            context("onboarding"),
            nodes={"welcome": "completed", "done": "completed"},
            outputs={"done": {"username": "katherine.johnson", "kitId": "KIT-katherine.johnson"}},
        ),
        Example(
            "retry_loop",
            context("retry_loop"),
            passes={"poll_status": 3},
            outputs={"report": {"status": "ready", "polls": 3}},
        ),
    ]


def _examples() -> tuple[Example, ...]:
    """The bundled examples, then every other workflow of the app with a sample context.

    A workflow a user adds to ``workflows/`` runs too, expected only to finish; one whose
    bundled example was removed is left out instead of breaking the demo.
    """
    known = [e for e in _bundled_examples() if e.blueprint_id in blueprints]
    named = {e.blueprint_id for e in known}
    extra = [
        Example(blueprint_id, context, status=None)
        for blueprint_id, context in sample_contexts.items()
        if blueprint_id not in named and blueprint_id in blueprints
    ]
    return (*known, *extra)


EXAMPLES: tuple[Example, ...] = _examples()


def check(example: Example, run: Json | None) -> list[str]:
    """How the final ``GET /runs/{id}`` body differs from what the example expects."""
    if run is None:
        return ["the run was never readable"]
    problems: list[str] = []
    expected = (example.status,) if example.status else ("completed", "awaiting")
    if run.get("status") not in expected:
        detail = f" ({run['error']})" if run.get("error") else ""
        allowed = " or ".join(repr(s) for s in expected)
        problems.append(f"status is {run.get('status')!r}, expected {allowed}{detail}")
    nodes: dict[str, str] = run.get("nodes") or {}
    for node_id, status in example.nodes.items():
        if nodes.get(node_id) != status:
            problems.append(f"node {node_id!r} is {nodes.get(node_id)!r}, expected {status!r}")
    timeline: list[Json] = run.get("timeline") or []
    for node_id, attempts in example.attempts.items():
        entry = next((t for t in timeline if t["node"] == node_id), None)
        if entry is None or entry.get("attempts") != attempts:
            found = None if entry is None else entry.get("attempts")
            problems.append(f"node {node_id!r} took {found} attempt(s), expected {attempts}")
    for node_id, count in example.passes.items():
        done = sum(
            1 for t in timeline if _base(t["node"]) == node_id and t["status"] == "completed"
        )
        if done != count:
            problems.append(f"node {node_id!r} completed {done} time(s), expected {count}")
    outputs: Json = run.get("outputs") or {}
    for node_id, wanted in example.outputs.items():
        output = outputs.get(node_id)
        for key, value in wanted.items():
            got = output.get(key) if isinstance(output, dict) else None
            if got != value:
                problems.append(f"output of {node_id!r}: {key}={got!r}, expected {value!r}")
    return problems


def _base(key: str) -> str:
    """``poll_status#2`` -> ``poll_status`` (timeline keys carry the loop iteration)."""
    return key.rpartition("#")[0] or key


# --------------------------------------------------------------------------------------------
# Counting AWS requests by who made them
# --------------------------------------------------------------------------------------------

#: Who is making AWS requests on this thread (or asyncio task) right now.
_ROLE: ContextVar[str | None] = ContextVar("flowcraft_demo_role", default=None)

#: Roles. ``run``: the worker, and the API starting/resuming a run (what the workflow costs).
RUN, STATUS, RECONCILER, EVENT_SOURCE, OTHER = (
    "run",
    "status reads",
    "reconciler",
    "event source",
    "other",
)


class RequestLedger:
    """AWS requests counted by role and operation, from botocore's ``before-send`` event.

    ``stack.aws_calls`` counts by operation only, which cannot tell a run's own reads from the
    demo's status polling while both happen at once. So the handlers are wrapped
    (:meth:`wrap`) to tag the requests they make with a role; untagged requests made on the
    event source's poller threads are its receives and deletes. It also tracks worker
    invocations in flight, so a run's count is only closed once its last invocation returned.
    """

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._session: boto3.Session | None = None
        self._unique_id = f"flowcraft-demo-ledger-{id(self)}"
        self._in_flight = 0
        self._idle = threading.Condition(self._lock)

    def install(self) -> None:
        """Hook boto3's default session (the one the stack's counter uses too).

        It must happen before any client exists (clients copy the hooks when created), hence
        before the stack starts; the shared client cache is cleared for the same reason.
        """
        if boto3.DEFAULT_SESSION is None:
            boto3.setup_default_session()
        session = boto3.DEFAULT_SESSION
        assert session is not None
        session.events.register("before-send", self._on_send, unique_id=self._unique_id)
        self._session = session
        reset_clients()

    def uninstall(self) -> None:
        if self._session is not None:
            self._session.events.unregister("before-send", unique_id=self._unique_id)
            self._session = None

    def _on_send(self, event_name: str = "", **kwargs: Any) -> None:
        parts = event_name.split(".")  # before-send.<service>.<Operation>
        operation = ".".join(parts[1:3]) if len(parts) > 2 else event_name
        role = _ROLE.get()
        if role is None:
            role = EVENT_SOURCE if "poller" in threading.current_thread().name else OTHER
        with self._lock:
            self._counts[(role, operation)] += 1

    def wrap(self, module: str, role_of: Callable[[Json], str], *, worker: bool = False) -> Handler:
        """``<module>.handler``, imported on first call, with its requests tagged by role."""

        def handler(event: Json, context: Any) -> Any:
            real: Handler = importlib.import_module(module).handler
            token = _ROLE.set(role_of(event))
            if worker:
                with self._lock:
                    self._in_flight += 1
            try:
                return real(event, context)
            finally:
                _ROLE.reset(token)
                if worker:
                    with self._lock:
                        self._in_flight -= 1
                        self._idle.notify_all()

        return handler

    def wait_until_idle(self, timeout_s: float) -> bool:
        """Wait for worker invocations in flight to return (their requests belong to the run)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout_s)

    def snapshot(self) -> Counter[tuple[str, str]]:
        with self._lock:
            return Counter(self._counts)


def api_role(event: Json) -> str:
    """Reading a run is the demo watching; every other route is part of running it."""
    return STATUS if event.get("httpMethod") == "GET" else RUN


# --------------------------------------------------------------------------------------------
# The HTTP API, with urllib only
# --------------------------------------------------------------------------------------------


class ApiError(RuntimeError):
    """A non-2xx answer, with the JSON (or text) the API gave."""

    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        super().__init__(f"{method} {path} -> {status}: {body}")
        self.status = status
        self.body = body


class Api:
    """The routes the demo uses (README, HTTP API)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def call(self, method: str, path: str, body: Json | None = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.base_url}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, _json_or_text(response.read())
        except urllib.error.HTTPError as exc:
            raise ApiError(method, path, exc.code, _json_or_text(exc.read())) from None

    def start(self, blueprint_id: str, context: Json) -> Json:
        _, body = self.call("POST", "/runs", {"blueprintId": blueprint_id, "context": context})
        return dict(body)

    def get(self, run_id: str) -> Json:
        _, body = self.call("GET", f"/runs/{run_id}")
        return dict(body)

    def resume(self, run_id: str, body: Json) -> int:
        status, _ = self.call("POST", f"/runs/{run_id}/resume", body)
        return status


def _json_or_text(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", errors="replace")


# --------------------------------------------------------------------------------------------
# Running one example
# --------------------------------------------------------------------------------------------


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
            if status == "awaiting" and example.resume is not None and not resumed:
                code = api.resume(run_id, example.resume)
                resumed = True
                line(f"POST /runs/{run_id[:8]}../resume {_compact(example.resume, 60)} -> {code}")
                continue
            if status == "awaiting" and example.resume is None:
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
    if entry.get("status") == "completed" and attempts > 1:
        return f"completed after {attempts} attempts"
    return str(entry.get("status"))


def _compact(value: Any, width: int = OUTPUT_WIDTH) -> str:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    return text if len(text) <= width else text[: width - 3] + "..."


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------


def diagram_statuses(run: Json) -> dict[str, str]:
    """Node statuses to colour the diagram by.

    ``nodes`` reports each node's *latest* instance. A loop body's latest instance is the one
    the loop's exit pass skipped, so the body would be drawn grey although it ran three times;
    a node that completed in any pass is drawn as completed instead.
    """
    statuses = dict(run.get("nodes") or {})
    for entry in run.get("timeline") or []:
        node_id = _base(entry["node"])
        if entry["status"] == "completed" and statuses.get(node_id) == "skipped":
            statuses[node_id] = "completed"
    return statuses


def write_diagram(report: RunReport, out: Path) -> None:
    if report.run is None:
        return
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{report.example.blueprint_id}.mmd"
    blueprint = blueprints[report.example.blueprint_id]
    path.write_text(generate_mermaid(blueprint, diagram_statuses(report.run)), encoding="utf-8")
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
    latest = {_base(t["node"]): t["node"] for t in timeline if t["status"] == "completed"}
    for entry in timeline:
        finished = entry.get("finishedAt")
        start, end = as_datetime(created), as_datetime(finished)
        offset = (
            f"+{(end - start).total_seconds() * 1000:6.0f} ms"
            if start is not None and end is not None
            else "         -"
        )
        status = entry["status"]
        attempts = "" if status == "skipped" else f"x{entry.get('attempts') or 1}"
        output = ""
        node_id = _base(entry["node"])
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
        1
        for t in (report.run or {}).get("timeline") or []
        if t["status"] in ("completed", "failed")
    )
    nodes = f"{executed} node{'s' if executed != 1 else ''} executed"
    per_node = f", {by_role[RUN] / executed:.1f} per node" if executed else ""
    ops = ", ".join(f"{op} {n}" for op, n in run_ops.most_common())
    side = ", ".join(f"{n} {role}" for role, n in by_role.items() if role != RUN)
    return f"  AWS requests: {by_role[RUN]} by the run ({nodes}{per_node}): {ops}" + (
        f"\n                also during it: {side}" if side else ""
    )


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m local demo",
        description="Run the example workflows end to end on the local stack.",
    )
    parser.add_argument("--out", type=Path, default=Path("demo-out"), help="diagram directory")
    parser.add_argument(
        "--timeout",
        type=float,
        default=20.0,
        help="seconds each run may take before it is cancelled and reported",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=[e.blueprint_id for e in EXAMPLES],
        help="run only this example (repeatable)",
    )
    parser.add_argument("--prefix", default=DEFAULT_PREFIX, help="resource name prefix")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the stack's logs")
    return parser


#: Set for the demo unless the user set it: Powertools loggers read it when the handlers import.
#: (Metrics are *not* disabled: with ``POWERTOOLS_METRICS_DISABLED`` Powertools never clears its
#: metric set and prints it anyway once a metric holds 100 values.)
QUIET_ENVIRONMENT = {"POWERTOOLS_LOG_LEVEL": "WARNING"}


class LambdaStdout(io.TextIOBase):
    """``sys.stdout`` for the demo: what a handler prints goes to a log file.

    On Lambda a function's stdout (Powertools' JSON log lines and EMF metric documents) goes
    to CloudWatch Logs; here it goes to ``<out>/lambda.log``, so the demo's own report stays
    readable and nothing the handlers said is lost. A write counts as the handler's when it
    happens inside a wrapped handler call (see :meth:`RequestLedger.wrap`).
    """

    def __init__(self, console: TextIO, log: TextIO) -> None:
        super().__init__()
        self.console = console
        self.log = log
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        target = self.log if _ROLE.get() is not None else self.console
        with self._lock:
            return target.write(text)

    def flush(self) -> None:
        with self._lock:
            self.console.flush()
            self.log.flush()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.console, "encoding", None) or "utf-8"

    def isatty(self) -> bool:
        return self.console.isatty()


@contextlib.contextmanager
def _quiet(verbose: bool, log_path: Path) -> Iterator[None]:
    """Warnings only from the stack, botocore and Powertools, handler stdout to ``log_path``.

    The demo's output is the point: a JSON log line per job and an EMF metrics document per
    invocation would bury it. With ``verbose`` nothing is hidden. Everything is restored after.
    """
    if verbose:
        if not logging.getLogger().handlers:
            logging.basicConfig(level=logging.INFO, stream=sys.stderr)
        yield
        return
    saved = {name: logging.getLogger(name).level for name in LOGGERS_TO_QUIET}
    added = [key for key in QUIET_ENVIRONMENT if key not in os.environ]
    for name in LOGGERS_TO_QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.update({key: QUIET_ENVIRONMENT[key] for key in added})
    log_path.parent.mkdir(parents=True, exist_ok=True)
    console = sys.stdout
    with open(log_path, "w", encoding="utf-8") as log, warnings.catch_warnings():
        # Powertools warns on every invocation that emitted no metric (the idle reconciler).
        warnings.filterwarnings("ignore", message="No application metrics to publish")
        sys.stdout = LambdaStdout(console, log)
        try:
            yield
        finally:
            sys.stdout = console
            for name, level in saved.items():
                logging.getLogger(name).setLevel(level)
            for key in added:
                os.environ.pop(key, None)


def _verbose_from_caller() -> bool:
    """``python -m local -v demo`` calls ``main()`` without arguments but configures DEBUG."""
    return logging.getLogger().getEffectiveLevel() <= logging.DEBUG


def main(argv: Sequence[str] | None = None) -> int:
    """Run the examples; 0 if every run ended as expected, 1 if not, 2 if it could not run."""
    if argv is None:
        argv = ["--verbose"] if _verbose_from_caller() else []
    args = build_parser().parse_args(list(argv))
    missing = [
        m for m in ("handlers.api", "handlers.worker", "handlers.reconciler") if not _found(m)
    ]
    if missing:
        print(f"demo: {', '.join(missing)} not found; the demo needs the Lambda handlers.")
        return 2
    examples = [e for e in EXAMPLES if not args.only or e.blueprint_id in args.only]

    from local.stack import LocalStack  # after the checks: it imports boto3 and moto lazily

    ledger = RequestLedger()
    say = _printer()
    reports: list[RunReport] = []
    begun = time.monotonic()
    with _quiet(args.verbose, args.out / LAMBDA_LOG):
        ledger.install()
        try:
            stack = LocalStack(
                prefix=args.prefix,
                api_port=0,
                concurrency=2,
                max_batching_window_s=0,
                worker_handler=ledger.wrap("handlers.worker", lambda e: RUN, worker=True),
                api_handler=ledger.wrap("handlers.api", api_role),
                reconciler_handler=ledger.wrap("handlers.reconciler", lambda e: RECONCILER),
            )
            with stack:
                assert stack.api_url is not None
                _banner(stack, say)
                api = Api(stack.api_url)
                for example in examples:
                    reports.append(run_example(api, ledger, example, args.timeout, say))
                stack_total = stack.aws_calls.total if stack.aws_calls is not None else 0
        finally:
            ledger.uninstall()

    for report in reports:
        write_diagram(report, args.out)
    say("\n" + "=" * 30 + " results " + "=" * 30)
    for report in reports:
        say("")
        for text in describe(report):
            say(text)
    failed = [r for r in reports if not r.ok]
    say(
        f"\n{len(reports) - len(failed)}/{len(reports)} runs as expected in "
        f"{time.monotonic() - begun:.1f} s; {stack_total} AWS requests in all "
        "(provisioning, polling and the reconciler included)."
    )
    if not args.verbose:
        say(f"Handler output (Powertools logs, EMF metrics) is in {args.out / LAMBDA_LOG}.")
    if any(r.diagram for r in reports):
        say(
            f"Mermaid diagrams (coloured by node status) in {args.out}/ - paste one into "
            "https://mermaid.live or a Markdown file to view it."
        )
    if failed:
        say("Not as expected: " + ", ".join(r.example.blueprint_id for r in failed))
        return 1
    return 0


def _found(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _printer() -> Callable[[str], None]:
    def say(text: str) -> None:
        print(text, flush=True)

    return say


def _banner(stack: Any, say: Callable[[str], None]) -> None:
    emulator = stack.emulator
    origin = "embedded moto server" if emulator is not None and emulator.owned else "reused"
    say("Flowcraft demo: the example workflows through the local HTTP API")
    say(f"  AWS emulator {emulator.endpoint if emulator else '?'} ({origin})")
    say(f"  HTTP API     {stack.api_url}")
    say(f"  worker       {stack.concurrency} SQS pollers -> handlers.worker.handler")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
