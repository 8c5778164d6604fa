"""Parking: sleeps, retry delays and waits, recorded in the node's own item.

A parked node keeps its job on the queue (a delayed message) rather than a Lambda waiting; its
item says why and until when, so the reconciler can re-send exactly that attempt if the
message is lost. A wait parks until a resume; when only waits remain, the run is ``awaiting``.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

from ..engine import NextAttempt, describe_error
from ..status import AWAITING
from .errors import CommitRejected, DeferJob
from .job import Job
from .plan import Plan
from .records import RETRYING, RUNNING, SLEEPING, PendingRetry, RunHead

if TYPE_CHECKING:
    from .execution import JobState
    from .worker import Worker

logger = logging.getLogger("flowcraft.worker")

#: SQS's longest message delay.
MAX_DELAY_SECONDS = 900
#: A job due within this many seconds waits in the worker rather than on the queue.
INLINE_WAIT_SECONDS = 1.0


def delay_of(seconds: float) -> int:
    """A message delay for ``seconds`` (SQS caps delays at 15 minutes; later ones re-park)."""
    return min(MAX_DELAY_SECONDS, max(0, math.ceil(seconds)))


#: SQS's longest visibility timeout (12 hours): the longest a deferred message can stay away.
MAX_VISIBILITY_SECONDS = 43_200


def visibility_of(seconds: float, longest: int = MAX_VISIBILITY_SECONDS) -> int:
    """The visibility timeout that keeps a deferred message away until it is due, ``seconds``
    from now (a FIFO queue has no per-message delay); at most ``longest``."""
    return min(longest, max(0, int(seconds) + 1))


class Parking:
    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    async def until_due(self, job: Job) -> bool:
        """Whether the job may run now: a job due within a second waits in-process (SQS delays
        are whole seconds, so a 100 ms retry delay stays 100 ms); one due later is parked again
        and False is returned."""
        if job.not_before is None:
            return True
        remaining = job.not_before - self.worker.clock.now()
        if remaining <= 0:
            return True
        if remaining <= INLINE_WAIT_SECONDS:
            await self.worker.clock.sleep(remaining)
            return True
        self.park_until_due(job)
        return False

    def park_until_due(self, job: Job) -> None:
        """A job that came back before it is due: park it again (or defer it on FIFO)."""
        assert job.not_before is not None
        remaining = job.not_before - self.worker.clock.now()
        if not getattr(self.worker.queue, "supports_delay", True):
            raise DeferJob(remaining)
        self.worker.send([job], delay_seconds=delay_of(remaining))

    def sleep(self, state: JobState, instance: str, until: float) -> None:
        """Record the wake time once (duplicates agree on it), then park the job."""
        now = self.worker.clock.now()
        try:
            record = self.worker.runs.park(
                state.run_id, instance, status=SLEEPING, now=now, wake=until
            )
        except CommitRejected:
            return
        wake = record.wake if record.wake is not None else until
        parked = state.job.model_copy(update={"not_before": wake})
        self.worker.send([parked], delay_seconds=delay_of(wake - now))

    def retry(
        self, state: JobState, instance: str, verdict: NextAttempt, exc: BaseException, label: str
    ) -> None:
        """Send the attempt the policy chose (``verdict``), after its delay.

        The pending attempt is recorded first (one write; retries are rare), so a reconciler
        pass that finds the run quiet re-sends this attempt when it is due instead of starting
        the node over at attempt one.
        """
        job, worker = state.job, self.worker
        delay = verdict.delay
        not_before = worker.clock.now() + delay
        following = job.model_copy(update={"attempt": verdict.attempt, "not_before": not_before})
        try:
            worker.runs.park(
                state.run_id,
                instance,
                status=RETRYING,
                now=worker.clock.now(),
                attempts=job.attempt,
                retry=PendingRetry(following.attempt, not_before),
            )
        except CommitRejected:
            return  # settled meanwhile (another delivery): nothing to retry
        worker.stats.retries += 1
        logger.info(
            "%s attempt %d failed (%s); retrying in %.3fs",
            label,
            job.attempt,
            describe_error(exc),
            delay,
        )
        # A sub-second delay is waited out by the worker that receives the attempt.
        worker.send(
            [following], delay_seconds=0 if delay <= INLINE_WAIT_SECONDS else delay_of(delay)
        )

    def wait(self, state: JobState, key: str, attempts: int, output: Any = None) -> None:
        """Park a node until a resume (keeping what it shows, such as a webhook's endpoint);
        the run is ``awaiting`` once nothing else is running."""
        worker = self.worker
        try:
            worker.runs.park(
                state.run_id,
                key,
                status=AWAITING,
                now=worker.clock.now(),
                attempts=attempts,
                output=output,
            )
        except CommitRejected:
            return  # parked already (and maybe resumed), or settled: leave it
        worker.runs.add_wait(state.run_id, key)
        worker.views.park_if_quiet(state.plan, state.run_id)

    def check_quiet(self, plan: Plan, head: RunHead) -> None:
        """After a branch ended: if the run has waiting nodes and nothing else outstanding, it
        is ``awaiting``. Only runs whose head (as the job read it) lists a waiting node pay for
        the check, which reads the whole run; the rare branch that ends while a wait parks
        concurrently is left to the reconciler."""
        if not head.waits:
            return
        current = self.worker.runs.head(head.run_id)
        if current is None or current.status != RUNNING:
            return
        self.worker.views.park_if_quiet(plan, head.run_id)
