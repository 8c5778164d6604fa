"""The technology-free distributed protocol: jobs, stores, worker step, reconciler, client."""

from .client import WorkflowClient
from .errors import (
    CommitRejected,
    PoisonJob,
    RunConflict,
    RunNotFound,
    StateTooLarge,
    UnknownBlueprint,
)
from .job import Job
from .reconciler import Reconciler, ReconcileStats
from .records import NodeRecord, RunRecord
from .stores import InMemoryJobQueue, InMemoryRunStore, InMemoryStatusStore
from .worker import Worker, WorkerStats

__all__ = [
    "CommitRejected",
    "InMemoryJobQueue",
    "InMemoryRunStore",
    "InMemoryStatusStore",
    "Job",
    "NodeRecord",
    "PoisonJob",
    "ReconcileStats",
    "Reconciler",
    "RunConflict",
    "RunNotFound",
    "RunRecord",
    "StateTooLarge",
    "UnknownBlueprint",
    "Worker",
    "WorkerStats",
    "WorkflowClient",
]
