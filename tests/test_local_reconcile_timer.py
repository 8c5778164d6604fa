"""``local.reconcile_timer`` sends EventBridge scheduled events and survives handler errors."""

from __future__ import annotations

import threading
import time
from typing import Any

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel

from local.reconcile_timer import ReconcileTimer, scheduled_event


def test_scheduled_event_shape() -> None:
    event = scheduled_event(rule_name="r", region="eu-west-1", account_id="111122223333")
    EventBridgeModel.model_validate(event)
    assert event["detail-type"] == "Scheduled Event"
    assert event["source"] == "aws.events"
    assert event["detail"] == {}
    assert event["resources"] == ["arn:aws:events:eu-west-1:111122223333:rule/r"]
    assert event["time"].endswith("Z")


def test_fire_once_returns_stats_and_swallows_errors() -> None:
    seen: list[tuple[dict[str, Any], Any]] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, int]:
        seen.append((event, context))
        return {"scanned_items": 1}

    timer = ReconcileTimer(handler, every_s=60, function_name="rec")
    assert timer.fire_once() == {"scanned_items": 1}
    assert seen[0][1].function_name == "rec"
    assert seen[0][1].get_remaining_time_in_millis() > 0

    def broken(event: dict[str, Any], context: Any) -> None:
        raise RuntimeError("table gone")

    timer.handler = broken
    assert timer.fire_once() is None
    assert (timer.runs, timer.errors) == (2, 1)


def test_timer_keeps_ticking_after_an_exception() -> None:
    calls = 0
    done = threading.Event()

    def flaky(event: dict[str, Any], context: Any) -> dict[str, int]:
        nonlocal calls
        calls += 1
        if calls >= 3:
            done.set()
        if calls == 1:
            raise RuntimeError("first run fails")
        return {"reconciled_runs": 0}

    timer = ReconcileTimer(flaky, every_s=0.05)
    timer.start()
    try:
        assert done.wait(2)
    finally:
        timer.stop()
    assert timer.errors == 1 and timer.runs >= 3
    stopped_at = timer.runs
    time.sleep(0.15)
    assert timer.runs == stopped_at
