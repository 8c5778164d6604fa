"""The reconciler: find runs that stopped making progress and resume them by their recorded
decisions (it never decides an edge). It reads only the active-run index for stale heartbeats,
so its cost follows the stalled runs: docs/design.md, section 7.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from ..status import AWAITING, FAILED
from .records import FINAL_STATUSES
from .stores import StatusStore
from .worker import Worker

logger = logging.getLogger("flowcraft.reconciler")

LOCK_KEY = "flowcraft:reconciler"


class Lock(Protocol):
    def set_if_not_exist(self, key: str, value: Any, ttl_seconds: float) -> bool: ...
    def delete(self, key: str) -> None: ...


@dataclass
class ReconcileStats:
    scanned_items: int = 0
    stalled_runs: int = 0
    reconciled_runs: int = 0
    failed_runs: int = 0
    jobs_sent: int = 0
    skipped_locked: bool = False

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class Reconciler:
    def __init__(
        self,
        worker: Worker,
        *,
        statuses: StatusStore,
        stalled_threshold_seconds: float = 300,
        max_runs: int = 500,
        lock: Lock | None = None,
    ) -> None:
        self.lock = lock
        self.worker = worker
        self.statuses = statuses
        self.threshold = stalled_threshold_seconds
        self.max_runs = max_runs

    def run(self) -> ReconcileStats:
        """One pass. Overlapping passes (a slow one and the next schedule) take turns."""
        stats = ReconcileStats()
        if self.lock is not None and not self.lock.set_if_not_exist(
            LOCK_KEY, "held", max(30.0, self.threshold / 2)
        ):
            stats.skipped_locked = True
            return stats
        try:
            self._pass(stats)
        finally:
            if self.lock is not None:
                self.lock.delete(LOCK_KEY)
        return stats

    def _pass(self, stats: ReconcileStats) -> None:
        now = self.worker.clock.now()
        run_ids, scanned = self.statuses.stale(now - self.threshold, self.max_runs)
        stats.scanned_items = scanned
        for run_id in run_ids:
            try:
                self._reconcile(run_id, now, stats)
            except Exception:
                stats.failed_runs += 1
                logger.exception("could not reconcile run %s", run_id)

    def _reconcile(self, run_id: str, now: float, stats: ReconcileStats) -> None:
        worker = self.worker
        head = worker.runs.head(run_id)
        if head is None:
            self.statuses.changed(run_id, FAILED, now, error="the run's head item is missing")
            return
        if head.status in FINAL_STATUSES or head.status == AWAITING:
            self.statuses.changed(run_id, head.status, now, error=head.error)
            worker.views.recheck_status_row(run_id, head.status)
            return
        stats.stalled_runs += 1
        plan = worker.plan(head.blueprint_id)
        if plan is None:
            worker.fail_run(head, f"unknown blueprint {head.blueprint_id!r}")
            stats.reconciled_runs += 1
            return
        record = worker.views.load(plan, run_id, outputs=False, fanouts=True)
        if record is None:
            return
        sent, next_look = worker.views.restart_stalled(plan, record)
        stats.jobs_sent += sent
        # Runs whose every branch is parked (long sleeps, retry delays) are looked at again
        # when the first of them is due, not at every pass.
        self.statuses.heartbeat(run_id, max(now, next_look - self.threshold))
        stats.reconciled_runs += 1
