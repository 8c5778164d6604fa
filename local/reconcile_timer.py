"""Call the reconciler on a fixed rate, the way an EventBridge ``rate(...)`` rule invokes it,
with a real scheduled event. How it differs from EventBridge: docs/local.md, "The reconciler
timer".
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from local.lambda_context import DEFAULT_ACCOUNT_ID, DEFAULT_REGION, make_context

logger = logging.getLogger("flowcraft.local")

Handler = Callable[[dict[str, Any], Any], Any]


def scheduled_event(
    *,
    rule_name: str = "flowcraft-reconcile",
    region: str = DEFAULT_REGION,
    account_id: str = DEFAULT_ACCOUNT_ID,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The event EventBridge sends for one firing of a scheduled rule."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account_id,
        "time": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:events:{region}:{account_id}:rule/{rule_name}"],
        "detail": {},
    }


def default_handler() -> Handler:
    """``handlers.reconciler.handler``, imported on first use so ``FLOWCRAFT_*`` is set before."""
    module = importlib.import_module("handlers.reconciler")
    handler: Handler = module.handler
    return handler


class ReconcileTimer:
    """Invoke ``handler`` every ``every_s`` seconds in a background thread."""

    def __init__(
        self,
        handler: Handler | None = None,
        every_s: float = 10.0,
        *,
        function_name: str = "flowcraft-reconciler",
        rule_name: str = "flowcraft-reconcile",
        timeout_s: float = 60,
        region: str = DEFAULT_REGION,
        account_id: str = DEFAULT_ACCOUNT_ID,
    ) -> None:
        """``handler=None`` means ``handlers.reconciler.handler``, imported at :meth:`start`."""
        if every_s <= 0:
            raise ValueError("every_s must be positive")
        self.handler = handler
        self.every_s = every_s
        self.function_name = function_name
        self.rule_name = rule_name
        self.timeout_s = timeout_s
        self.region = region
        self.account_id = account_id
        self.runs = 0
        self.errors = 0
        self.last_result: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def fire_once(self) -> Any:
        """Invoke the handler now; returns its result, or ``None`` after logging an exception."""
        if self.handler is None:
            self.handler = default_handler()
        event = scheduled_event(
            rule_name=self.rule_name, region=self.region, account_id=self.account_id
        )
        context = make_context(
            self.function_name,
            timeout_s=self.timeout_s,
            region=self.region,
            account_id=self.account_id,
        )
        started = time.monotonic()
        self.runs += 1
        try:
            result = self.handler(event, context)
        except Exception:
            self.errors += 1
            logger.exception("%s raised; the next tick runs anyway", self.function_name)
            return None
        self.last_result = result
        logger.info(
            "%s: %s (%.0f ms)", self.function_name, result, (time.monotonic() - started) * 1000
        )
        return result

    def start(self) -> None:
        """Start ticking in a daemon thread (first tick after one interval)."""
        if self._thread is not None:
            raise RuntimeError("timer already started")
        if self.handler is None:
            self.handler = default_handler()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=self.function_name, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float | None = 10) -> None:
        """Stop ticking; waits for an invocation in flight to finish."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _loop(self) -> None:
        next_tick = time.monotonic() + self.every_s
        while not self._stop.wait(max(0.0, next_tick - time.monotonic())):
            try:
                self.fire_once()
            except Exception:  # building the event/context should not fail, but never die
                logger.exception("%s: timer tick failed", self.function_name)
            now = time.monotonic()
            next_tick += self.every_s
            if next_tick <= now:  # overran: skip the missed ticks
                next_tick = now + self.every_s - ((now - next_tick) % self.every_s)
