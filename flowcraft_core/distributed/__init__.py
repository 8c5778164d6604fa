"""The technology-free distributed protocol: jobs, run items, worker step, reconciler, client."""

from .client import WorkflowClient
from .errors import (
    CommitRejected,
    PoisonJob,
    RunConflict,
    RunNotFound,
    StateTooLarge,
    UnknownBlueprint,
)
from .items import InMemoryItemStore, ItemStore
from .job import Job
from .payloads import InMemoryPayloadStore, PayloadStore, ValueCodec, ValueTooLarge
from .reconciler import Reconciler, ReconcileStats
from .records import NodeRecord, RunHead, RunRecord
from .state import Retention
from .stores import InMemoryJobQueue, InMemoryStatusStore
from .worker import Worker, WorkerStats

__all__ = [
    "CommitRejected",
    "InMemoryItemStore",
    "InMemoryJobQueue",
    "InMemoryPayloadStore",
    "InMemoryStatusStore",
    "ItemStore",
    "Job",
    "NodeRecord",
    "PayloadStore",
    "PoisonJob",
    "ReconcileStats",
    "Reconciler",
    "Retention",
    "RunConflict",
    "RunHead",
    "RunNotFound",
    "RunRecord",
    "StateTooLarge",
    "UnknownBlueprint",
    "ValueCodec",
    "ValueTooLarge",
    "Worker",
    "WorkerStats",
    "WorkflowClient",
]
