"""Scheduled reconciler: EventBridge invokes it every few minutes to resume stalled runs.

What a pass does and why a stalled run never fails the invocation: docs/design.md, section 7.
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
        container = config.container()
    except config.ConfigError:
        logger.exception("reconciler is not configured")
        metrics.add_metric(name="ConfigErrors", unit=MetricUnit.Count, value=1)
        raise
    from flowcraft_core.aws.adapter import create_sqs_reconciler

    reconciler = create_sqs_reconciler(
        container.adapter, stalled_threshold_seconds=container.settings.stalled_seconds
    )
    stats: dict[str, Any] = dict(reconciler.run().to_dict())
    for key, name in _METRICS.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=int(stats.get(key, 0)))
    logger.info(
        "reconciliation pass done",
        extra={"stats": stats, "scheduled_at": event.get("time"), "rule": event.get("resources")},
    )
    return stats
