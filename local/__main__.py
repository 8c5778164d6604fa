"""``python -m local``: run Flowcraft on a laptop against an embedded AWS emulator.

Subcommands ``up`` (the whole stack until Ctrl-C), ``provision`` (an already running emulator
only) and ``demo`` (the example workflows end to end).
Why they behave this way: docs/local.md, 'The command line'.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any, TypeAlias

from flowcraft_core.aws.schema import DEFAULT_PREFIX

logger = logging.getLogger("flowcraft.local")
#: ``up``'s own progress (start, stop, totals): shown in the short default output too.
up_logger = logging.getLogger("flowcraft.local.up")

Handler = Callable[[dict[str, Any], Any], Any]
#: What ``ArgumentParser.add_subparsers`` returns.
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s [%(threadName)s] %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not verbose:  # botocore and werkzeug are chatty at INFO
        for noisy in ("botocore", "werkzeug", "urllib3"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def _cmd_provision(args: argparse.Namespace) -> int:
    if not os.environ.get("AWS_ENDPOINT_URL"):
        print(
            "python -m local provision: AWS_ENDPOINT_URL is not set.\n"
            "It provisions an already running emulator and will not touch a real AWS account.\n"
            "  - `python -m local up` starts an emulator and provisions it by itself, or\n"
            "  - run `python -m local up --emulator-port 4566` in another shell, then\n"
            "    `AWS_ENDPOINT_URL=http://127.0.0.1:4566 python -m local provision`.",
            file=sys.stderr,
        )
        return 2
    from local.provision import provision
    from local.stack import local_aws_defaults

    defaults = local_aws_defaults()
    os.environ.update(defaults)
    settings = provision(args.prefix)
    if args.exports:
        # For `eval "$(python -m local provision --exports)"`: everything a script needs.
        shown = {"AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"], **defaults, **settings}
        for key, value in shown.items():
            print(f"export {key}={shlex.quote(value)}")
        return 0
    print(json.dumps(settings, indent=2))
    return 0


def _cmd_up(args: argparse.Namespace) -> int:
    from flowcraft_core.app import AppModuleError, load_app
    from local.stack import LocalStack

    try:  # first: a broken app module must stop us before anything starts
        load_app(search_path=os.getcwd())
    except AppModuleError as error:
        print(f"python -m local up: {error}", file=sys.stderr)
        return 2

    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():  # second Ctrl-C: stop waiting for a clean shutdown
            raise KeyboardInterrupt
        up_logger.info("received %s; stopping (again to force)", signal.Signals(signum).name)
        stop.set()

    # Handle SIGINT explicitly too: a shell that starts us in the background ignores it.
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    worker_handler: Handler | None = None
    api_handler: Handler | None = None
    if not (args.verbose or args.up_verbose):
        from local.console import install_quiet_console

        narrator = install_quiet_console()
        worker_handler = narrator.worker(_late("handlers.worker"))
        api_handler = narrator.api(_late("handlers.api"))
    stack = LocalStack(
        prefix=args.prefix,
        emulator_port=args.emulator_port,
        api_port=args.api_port,
        concurrency=args.concurrency,
        batch_size=args.batch_size,
        max_batching_window_s=args.batching_window,
        reconcile_every_s=args.reconcile_every,
        worker_handler=worker_handler,
        api_handler=api_handler,
    )
    with stack:
        print(stack.describe(), file=sys.stderr, flush=True)
        up_logger.info("running; press Ctrl-C to stop")
        try:
            while not stop.wait(1.0):
                pass
        finally:
            if stack.event_source is not None:
                stats = stack.event_source.stats
                up_logger.info(
                    "worker totals: %d batches, %d records, %d failed, %d handler errors",
                    stats.batches,
                    stats.records,
                    stats.failures,
                    stats.handler_errors,
                )
    up_logger.info("stopped")
    return 0


def _late(module: str) -> Handler:
    """``<module>.handler``, imported on first call (after the stack exported its settings)."""

    def call(event: dict[str, Any], context: Any) -> Any:
        from local.stack import import_handler

        return import_handler(module)(event, context)

    return call


def _cmd_demo(args: argparse.Namespace) -> int:
    try:
        demo = importlib.import_module("local.demo")
    except ModuleNotFoundError as exc:
        if exc.name != "local.demo":
            raise
        print("python -m local demo: local/demo is not there yet.", file=sys.stderr)
        return 2
    result = demo.main(list(args.demo_args) + (["--verbose"] if args.verbose else []))
    return int(result or 0)


def build_parser() -> argparse.ArgumentParser:
    """The command line (separate so tests can check it without running anything)."""
    parser = argparse.ArgumentParser(
        prog="python -m local",
        description="Run Flowcraft locally against an embedded AWS emulator.",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="debug logging, and the handlers' JSON log records and metric documents as on Lambda "
        "(default: one short line per run event)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _add_provision_command(commands)
    _add_up_command(commands)
    _add_demo_command(commands)
    return parser


def _add_provision_command(commands: Subcommands) -> None:
    provision = commands.add_parser(
        "provision",
        help="create queues and tables on AWS_ENDPOINT_URL and print the settings as JSON",
    )
    provision.add_argument("--prefix", default=DEFAULT_PREFIX, help="resource name prefix")
    provision.add_argument(
        "--exports",
        action="store_true",
        help="print shell `export` lines (endpoint, region, credentials, settings) for eval",
    )
    provision.set_defaults(func=_cmd_provision)


def _add_up_command(commands: Subcommands) -> None:
    up = commands.add_parser("up", help="emulator + API + queue poller + reconciler, until Ctrl-C")
    up.add_argument("--prefix", default=DEFAULT_PREFIX, help="resource name prefix")
    up.add_argument("--api-port", type=int, default=3000, help="HTTP API port (0: any free port)")
    up.add_argument(
        "--emulator-port",
        type=int,
        default=0,
        help="port for the embedded emulator (0: any free port; ignored with AWS_ENDPOINT_URL)",
    )
    up.add_argument("--concurrency", type=int, default=1, help="queue pollers (worker threads)")
    up.add_argument("--batch-size", type=int, default=10, help="SQS records per invocation")
    up.add_argument(
        "--batching-window",
        type=float,
        default=None,
        help="seconds to gather a batch (default 0.5, or 1 for batches above 10)",
    )
    up.add_argument(
        "--reconcile-every", type=float, default=10.0, help="seconds between reconciler runs"
    )
    up.add_argument(
        "--verbose",
        dest="up_verbose",
        action="store_true",
        help="the handlers' JSON log records and metric documents, as on Lambda",
    )
    up.set_defaults(func=_cmd_up)


def _add_demo_command(commands: Subcommands) -> None:
    # No -h of its own: '--help' after 'demo' reaches the demo's parser, like its other options.
    demo = commands.add_parser(
        "demo",
        help="run the example workflows end to end (options after 'demo', such as --out DIR, "
        "--only NAME or --timeout S, go to the demo)",
        add_help=False,
    )
    demo.set_defaults(func=_cmd_demo)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "demo":
        args.demo_args = extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    _configure_logging(args.verbose or getattr(args, "up_verbose", False))
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
