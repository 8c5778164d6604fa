"""SqsJobQueue: jobs to SQS in batches of ten (one request per ten successors)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from ..distributed.job import Job
from ..distributed.parking import delay_of
from ..errors import FlowcraftError
from .clients import sqs_client


class JobSendError(FlowcraftError, RuntimeError):
    pass


def _fit(identifier: str, limit: int = 128) -> str:
    if len(identifier) <= limit:
        return identifier
    return hashlib.sha256(identifier.encode()).hexdigest()


class SqsJobQueue:
    def __init__(self, queue_url: str, *, client: Any = None) -> None:
        self.queue_url = queue_url
        self.client = client or sqs_client()
        self.fifo = queue_url.endswith(".fifo")
        #: FIFO queues have no per-message delay; waiting jobs are deferred by visibility.
        self.supports_delay = not self.fifo

    def send(self, jobs: Sequence[Job], delay_seconds: int = 0) -> None:
        for start in range(0, len(jobs), 10):
            chunk = jobs[start : start + 10]
            entries: list[dict[str, Any]] = []
            for index, job in enumerate(chunk):
                entry: dict[str, Any] = {"Id": str(index), "MessageBody": job.to_message()}
                if self.fifo:
                    # FIFO queues have no per-message delay; ordering is per run. Both ids are
                    # limited to 128 characters: longer ones are hashed, never cut (a cut id
                    # would make different jobs of a long run look like duplicates).
                    # One group per node instance (or map item): commits are conditional, so no
                    # ordering across a run is needed, and a deferred job (a sleep, a retry
                    # delay) must not hold up the other branches of its run.
                    entry["MessageGroupId"] = _fit(f"{job.run_id}:{job.instance}")
                    entry["MessageDeduplicationId"] = _fit(job.dedup_id())
                elif delay_seconds:
                    entry["DelaySeconds"] = delay_of(delay_seconds)
                entries.append(entry)
            response = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            failed = response.get("Failed") or []
            if failed:
                reasons = "; ".join(f"{f.get('Code')}: {f.get('Message')}" for f in failed)
                raise JobSendError(f"SQS refused {len(failed)} job(s): {reasons}")
