"""Counting AWS requests by who made them (API, worker, reconciler)."""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import boto3

from flowcraft_core.aws.clients import reset_clients
from local.aws_calls import AwsCallCounter
from local.demo.base import Handler, Json

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


class RequestLedger(AwsCallCounter):
    """AWS requests counted by role and operation (``service.Operation``).

    ``stack.aws_calls`` counts by operation only, which cannot tell a run's own reads from the
    demo's status polling while both happen at once. So the handlers are wrapped
    (:meth:`wrap`) to tag the requests they make with a role; untagged requests made on the
    event source's poller threads are its receives and deletes. It also tracks worker
    invocations in flight, so a run's count is only closed once its last invocation returned.
    """

    def __init__(self) -> None:
        super().__init__()
        self._in_flight = 0
        self._idle = threading.Condition(self._lock)

    def install(self, session: boto3.Session | None = None) -> RequestLedger:
        """Hook boto3's default session (the one the stack's counter uses too).

        It must happen before any client exists (clients copy the hooks when created), hence
        before the stack starts; the shared client cache is cleared for the same reason.
        """
        super().install(session)
        reset_clients()
        return self

    def _key(self, service: str, operation: str) -> tuple[str, str]:
        role = _ROLE.get()
        if role is None:
            role = EVENT_SOURCE if "poller" in threading.current_thread().name else OTHER
        return role, f"{service}.{operation}"

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


def api_role(event: Json) -> str:
    """Reading a run is the demo watching; every other route is part of running it."""
    return STATUS if event.get("httpMethod") == "GET" else RUN
