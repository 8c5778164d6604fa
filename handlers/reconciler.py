"""Scheduled reconciler: EventBridge invokes it every few minutes to resume stalled runs.

The work is ``flowcraft_core``'s ``Reconciler``: it reads only the status table's active-run
index for heartbeats older than ``FLOWCRAFT_STALLED_SECONDS``, re-sends the ready nodes of each
stalled run by the recorded edge decisions, and closes runs that are in fact finished. Passes
that overlap (a slow one and the next schedule) take turns through a lock in the coordination
table. The handler returns the pass's statistics (``scanned_items``, ``stalled_runs``,
``reconciled_runs``, ``failed_runs``, ``jobs_sent``, ``skipped_locked``), logs them as one line and
emits them as metrics, so a dashboard shows stalls without reading logs.

A run that cannot be reconciled is counted in ``failed_runs`` and logged; it does not fail the
invocation, because EventBridge would retry the whole pass (and the next schedule comes anyway).
A configuration error does fail it: nothing can work until it is fixed, and the function's
``Errors`` alarm is the place to see that.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit

from handlers import config
from handlers.config import logger, metrics

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

#: Stats keys emitted as metrics (all counts).
_METRICS = {
    "stalled_runs": "StalledRuns",
    "reconciled_runs": "ReconciledRuns",
    "failed_runs": "ReconcileFailures",
    "jobs_sent": "ReconcileJobsSent",
}


@config.traced
@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Scheduled event -> one reconciliation pass -> its statistics (a JSON-able dict)."""
    try:
        runtime = config.runtime()
    except config.ConfigError:
        logger.exception("reconciler is not configured")
        metrics.add_metric(name="ConfigErrors", unit=MetricUnit.Count, value=1)
        raise
    from flowcraft_core.aws.adapter import create_sqs_reconciler

    reconciler = create_sqs_reconciler(
        runtime.adapter, stalled_threshold_seconds=runtime.settings.stalled_seconds
    )
    stats: dict[str, Any] = dict(reconciler.run().to_dict())
    for key, name in _METRICS.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=int(stats.get(key, 0)))
    logger.info(
        "reconciliation pass done",
        extra={"stats": stats, "scheduled_at": event.get("time"), "rule": event.get("resources")},
    )
    return stats
