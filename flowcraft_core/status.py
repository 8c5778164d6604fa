"""The statuses of runs and node instances, defined once for both drivers.

``Status`` members are strings (``Status.COMPLETED == "completed"``), so they serialise,
compare and print as the plain names the API and the stores use.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, get_args


class Status(StrEnum):
    #: A run (or, distributed, a node instance) that is under way.
    RUNNING = "running"
    COMPLETED = "completed"
    SKIPPED = "skipped"
    FAILED = "failed"
    CANCELLED = "cancelled"
    #: Parked until a person (or a webhook) resumes it.
    AWAITING = "awaiting"
    #: A subflow node whose child run is under way.
    WAITING = "waiting"
    #: A failed attempt waiting on the queue for its next one.
    RETRYING = "retrying"
    #: A sleep parked on the queue.
    SLEEPING = "sleeping"


RUNNING = Status.RUNNING
COMPLETED = Status.COMPLETED
SKIPPED = Status.SKIPPED
FAILED = Status.FAILED
CANCELLED = Status.CANCELLED
AWAITING = Status.AWAITING
WAITING = Status.WAITING
RETRYING = Status.RETRYING
SLEEPING = Status.SLEEPING
#: A run in one of these never changes again.
FINAL = frozenset({COMPLETED, FAILED, CANCELLED})
#: Every status a run can have (the API's enum, the status table's partitions).
RunStatus = Literal["running", "awaiting", "completed", "failed", "cancelled"]
RUN_STATUSES: tuple[Status, ...] = tuple(Status(value) for value in get_args(RunStatus))
#: A node instance in one of these will not run again in its run (progress counts, logs).
NODE_DONE = frozenset({COMPLETED, SKIPPED, FAILED, CANCELLED})
