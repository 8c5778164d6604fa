"""Status and queue protocols of the distributed driver, with in-memory implementations.

A run's own items go through ``items.ItemStore``. The AWS implementations live in
``flowcraft_core.aws``; the in-memory ones here behave the same so the protocol can be
unit-tested in milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .job import Job
from .records import RUNNING


class StatusStore(Protocol):
    def started(self, run_id: str, blueprint_id: str, now: float) -> bool:
        """Record a new running run; False when the run id exists already."""
        ...

    def changed(
        self, run_id: str, status: str, now: float, *, error: str | None = None
    ) -> None: ...

    def heartbeat(self, run_id: str, at: float) -> None: ...

    def stale(self, before: float, limit: int) -> tuple[list[str], int]:
        """Active runs with no heartbeat since ``before``: (run ids, items read)."""
        ...

    def get(self, run_id: str) -> dict[str, Any] | None: ...


class JobQueue(Protocol):
    def send(self, jobs: Sequence[Job], delay_seconds: int = 0) -> None: ...


@dataclass
class InMemoryStatusStore:
    items: dict[str, dict[str, Any]] = field(default_factory=dict)

    def started(self, run_id: str, blueprint_id: str, now: float) -> bool:
        if run_id in self.items:
            return False
        self.items[run_id] = {
            "runId": run_id,
            "blueprintId": blueprint_id,
            "status": RUNNING,
            "createdAt": now,
            "updatedAt": now,
            "heartbeatAt": now,
            "active": True,
        }
        return True

    def changed(self, run_id: str, status: str, now: float, *, error: str | None = None) -> None:
        item = self.items.setdefault(run_id, {"runId": run_id})
        item.update(status=status, updatedAt=now, heartbeatAt=now, active=status == RUNNING)
        if error:
            item["error"] = error

    def heartbeat(self, run_id: str, at: float) -> None:
        if run_id in self.items:
            self.items[run_id]["heartbeatAt"] = at

    def stale(self, before: float, limit: int) -> tuple[list[str], int]:
        found = [k for k, v in self.items.items() if v.get("active") and v["heartbeatAt"] < before][
            :limit
        ]
        return found, len(found)

    def get(self, run_id: str) -> dict[str, Any] | None:
        item = self.items.get(run_id)
        return dict(item) if item else None


@dataclass
class InMemoryJobQueue:
    """A list of (job, delay) pairs; tests deliver them in any order, as often as they like."""

    sent: list[tuple[Job, int]] = field(default_factory=list)

    def send(self, jobs: Sequence[Job], delay_seconds: int = 0) -> None:
        self.sent.extend((job, delay_seconds) for job in jobs)

    def drain(self) -> list[Job]:
        jobs = [job for job, _ in self.sent]
        self.sent.clear()
        return jobs
