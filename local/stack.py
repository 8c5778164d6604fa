"""Start the whole local stack in-process: emulator, resources, API, queue poller, reconciler.

``python -m local up``, the demo and end-to-end tests share this assembly, whose order matters;
:class:`LocalStack` starts it and undoes all of it, environment variables included.
Why it is shaped this way: docs/local.md, 'The stack'.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

import boto3

from flowcraft_core.app import App
from flowcraft_core.aws.schema import DEFAULT_PREFIX, JOB_QUEUE, QueueSpec
from flowcraft_core.environment import FLOWCRAFT_QUEUE_URL, FLOWCRAFT_WEBHOOK_BASE_URL
from local.api_server import ApiHTTPServer, serve_api, shutdown_api
from local.aws_calls import AwsCallCounter
from local.emulator import DUMMY_CREDENTIALS, Emulator
from local.event_source import SqsEventSource
from local.lambda_context import DEFAULT_ACCOUNT_ID, DEFAULT_REGION
from local.provision import provision
from local.reconcile_timer import ReconcileTimer

logger = logging.getLogger("flowcraft.local")

Handler = Callable[[dict[str, Any], Any], Any]


def import_handler(module_name: str) -> Handler:
    """``<module>.handler``, imported now (after the environment is in place)."""
    handler: Handler = importlib.import_module(module_name).handler
    return handler


def local_aws_defaults() -> dict[str, str]:
    """Region and dummy credentials to add when the environment lacks them.

    An emulator accepts any credentials, but botocore refuses to sign without some and cannot
    pick an endpoint without a region. Credentials a user configured (profile, SSO, ...) are
    left alone: dummy ones are only added when botocore finds none.
    """
    defaults: dict[str, str] = {}
    if not (os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")):
        defaults["AWS_REGION"] = defaults["AWS_DEFAULT_REGION"] = DEFAULT_REGION
    if boto3.Session().get_credentials() is None:
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            defaults[key] = DUMMY_CREDENTIALS[key]
    return defaults


def _default_batching_window(batch_size: int, requested: float | None) -> float:
    """The batching window asked for, else Lambda's minimum for the batch size."""
    if requested is not None:
        return requested
    # Lambda needs a window of at least 1 s for batches above 10; 0.5 s otherwise.
    return 1.0 if batch_size > 10 else 0.5


class LocalStack:
    """Everything ``python -m local up`` runs, startable and stoppable from Python."""

    def __init__(
        self,
        *,
        prefix: str = DEFAULT_PREFIX,
        queue: QueueSpec = JOB_QUEUE,
        emulator_port: int = 0,
        api_port: int = 3000,
        concurrency: int = 1,
        batch_size: int = 10,
        max_batching_window_s: float | None = None,
        function_timeout_s: float = 60,
        reconcile_every_s: float = 10.0,
        poll_wait_s: int = 1,
        worker_handler: Handler | None = None,
        api_handler: Handler | None = None,
        reconciler_handler: Handler | None = None,
        run_worker: bool = True,
        run_api: bool = True,
        run_reconciler: bool = True,
        count_aws_calls: bool = True,
    ) -> None:
        """Configure; nothing starts before :meth:`start` (or ``with``).

        Handlers left as ``None`` are ``handlers.worker|api|reconciler.handler``, imported after
        the settings are exported. ``run_*=False`` leaves a part out (a test that only needs the
        API, a demo that drives the worker itself). ``count_aws_calls`` installs an
        :class:`AwsCallCounter` on boto3's default session before any client exists, so
        ``stack.aws_calls`` sees the stack's and the handlers' requests. ``poll_wait_s`` is the
        pollers' long-poll wait: an idle poller makes one request per wait, and :meth:`stop`
        takes up to that long.
        """
        self.prefix = prefix
        self.queue = queue
        self.emulator_port = emulator_port
        self.api_port = api_port
        self.concurrency = concurrency
        self.batch_size = batch_size
        self.max_batching_window_s = _default_batching_window(batch_size, max_batching_window_s)
        self.function_timeout_s = function_timeout_s
        self.reconcile_every_s = reconcile_every_s
        self.poll_wait_s = poll_wait_s
        self._handlers = {
            "worker": worker_handler,
            "api": api_handler,
            "reconciler": reconciler_handler,
        }
        self._run = {"worker": run_worker, "api": run_api, "reconciler": run_reconciler}
        self.aws_calls: AwsCallCounter | None = AwsCallCounter() if count_aws_calls else None
        self._init_parts()

    def _init_parts(self) -> None:
        """What :meth:`start` fills in: nothing runs yet, no environment variable is saved."""
        self.emulator: Emulator | None = None
        self.settings: dict[str, str] = {}
        self.api_server: ApiHTTPServer | None = None
        self.api_url: str | None = None
        self.event_source: SqsEventSource | None = None
        self.timer: ReconcileTimer | None = None
        self._api_thread: threading.Thread | None = None
        self._saved_env: dict[str, str | None] = {}
        self._started = False
        self.app: App | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> LocalStack:
        """Bring everything up in dependency order; on failure, undo what already started."""
        if self._started:
            return self
        self._started = True
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop pollers, timer, API server and an emulator we own; restore the environment."""
        if self.timer is not None:
            self.timer.stop()
            self.timer = None
        if self.event_source is not None:
            self.event_source.stop()
        if self.api_server is not None and self._api_thread is not None:
            shutdown_api(self.api_server, self._api_thread)
            self.api_server = self._api_thread = None
        if self.emulator is not None and self.emulator.owned:
            self.emulator.stop()
        if self.aws_calls is not None:
            self.aws_calls.uninstall()
        self._restore_env()
        self._started = False

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def region(self) -> str:
        return (
            os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
        )

    def describe(self) -> str:
        """The banner ``up`` prints: what runs where."""
        emulator = self.emulator
        lines = ["Flowcraft local stack"]
        if emulator is not None:
            origin = "embedded moto server" if emulator.owned else "reused from AWS_ENDPOINT_URL"
            lines.append(f"  AWS emulator  {emulator.endpoint}  ({origin})")
        if self.api_url:
            lines.append(f"  HTTP API      {self.api_url}  (POST /runs, GET /runs/{{runId}}, ...)")
        if self.event_source is not None:
            lines.append(
                f"  worker        polling {self.settings.get('FLOWCRAFT_QUEUE_URL')} "
                f"(batch {self.batch_size}, {self.concurrency} poller(s))"
            )
        if self.timer is not None:
            lines.append(f"  reconciler    every {self.reconcile_every_s:g} s")
        lines.append("  settings:")
        lines += [f"    {key}={value}" for key, value in self.settings.items()]
        if emulator is not None:
            lines.append(f"  other shells: export AWS_ENDPOINT_URL={emulator.endpoint}")
        return "\n".join(lines)

    # -- internals ----------------------------------------------------------------------------

    def _start(self) -> None:
        if self._run["worker"] or self._run["api"]:
            # Before anything starts: a missing or broken FLOWCRAFT_APP is a start-up error
            # naming the module and the error, not a 500 on the first request.
            from flowcraft_core.app import load_app

            self.app = load_app(search_path=os.getcwd())
        self.emulator = Emulator.from_environment_or_start(self.emulator_port)
        self._export(self.emulator.environment())
        self._export(local_aws_defaults())
        if self.aws_calls is not None:
            self.aws_calls.install()

        self.settings = provision(self.prefix, queue=self.queue)
        self._export(self.settings)

        modules = {
            "worker": "handlers.worker",
            "api": "handlers.api",
            "reconciler": "handlers.reconciler",
        }
        handlers = {
            part: self._handlers[part] or import_handler(modules[part])
            for part in modules
            if self._run[part]
        }

        if "api" in handlers:
            self.api_server, self._api_thread, self.api_url = serve_api(
                handlers["api"], self.api_port, region=self.region
            )
            # Webhook nodes hand out URLs on this server.
            self._export({FLOWCRAFT_WEBHOOK_BASE_URL: self.api_url})
        if "worker" in handlers:
            self.event_source = SqsEventSource(
                self.settings[FLOWCRAFT_QUEUE_URL],
                handlers["worker"],
                batch_size=self.batch_size,
                max_batching_window_s=self.max_batching_window_s,
                function_timeout_s=self.function_timeout_s,
                concurrency=self.concurrency,
                region=self.region,
                wait_time_s=self.poll_wait_s,
            )
            self.event_source.start()
        if "reconciler" in handlers:
            self.timer = ReconcileTimer(
                handlers["reconciler"],
                self.reconcile_every_s,
                region=self.region,
                account_id=self._account_id(),
            )
            self.timer.start()

    def _account_id(self) -> str:
        if self.event_source is not None:
            return self.event_source.queue_arn.split(":")[4]
        return DEFAULT_ACCOUNT_ID

    def _export(self, variables: dict[str, str]) -> None:
        for key, value in variables.items():
            if key not in self._saved_env:
                self._saved_env[key] = os.environ.get(key)
            os.environ[key] = value

    def _restore_env(self) -> None:
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env = {}
