"""The command line: run the examples on a fresh local stack, quietly unless asked."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import logging
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from flowcraft_core.aws.schema import DEFAULT_PREFIX
from local.demo.base import LAMBDA_LOG, LOGGERS_TO_QUIET
from local.demo.examples import EXAMPLES, Example
from local.demo.http import Api
from local.demo.ledger import _ROLE, RECONCILER, RUN, RequestLedger, api_role
from local.demo.report import describe, write_diagram
from local.demo.running import RunReport, run_example


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
    say = _printer()
    begun = time.monotonic()
    reports, stack_total = _run_examples(args, examples, say)
    for report in reports:
        write_diagram(report, args.out)
    _print_results(reports, say)
    return _print_summary(args, reports, begun, stack_total, say)


def _run_examples(
    args: argparse.Namespace, examples: Sequence[Example], say: Callable[[str], None]
) -> tuple[list[RunReport], int]:
    """Each example, one after another, on a fresh stack: (their reports, the AWS requests)."""
    from local.stack import LocalStack  # after the checks: it imports boto3 and moto lazily

    ledger = RequestLedger()
    reports: list[RunReport] = []
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
    return reports, stack_total


def _print_results(reports: Sequence[RunReport], say: Callable[[str], None]) -> None:
    """Per run: status, timeline and AWS requests."""
    say("\n" + "=" * 30 + " results " + "=" * 30)
    for report in reports:
        say("")
        for text in describe(report):
            say(text)


def _print_summary(
    args: argparse.Namespace,
    reports: Sequence[RunReport],
    begun: float,
    stack_total: int,
    say: Callable[[str], None],
) -> int:
    """The closing lines: how many runs went as expected, and where the files are; the exit code."""
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
