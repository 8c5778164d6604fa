"""The job payload: one SQS message per node execution (pydantic, camelCase on the wire)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from ..builtins.map import map_item_instance

#: SQS refuses messages over 256 KiB; jobs are a few hundred bytes, so anything big is bad input.
MAX_JOB_BYTES = 16 * 1024


class Job(BaseModel):
    """Run this node instance (``node_id`` may carry a ``#k`` loop-iteration suffix)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    #: Child runs of subflows extend their parent's id, hence more room than the API's 200.
    run_id: str = Field(min_length=1, max_length=1000)
    blueprint_id: str = Field(min_length=1, max_length=200)
    node_id: str = Field(min_length=1, max_length=220)  # an id (200) plus a loop suffix
    attempt: int = Field(default=1, ge=1, le=1000)
    #: Epoch seconds before which the node must not run (sleeps and retry delays).
    not_before: float | None = None
    #: For a map node fanned out over the queue: which item this job runs.
    item: int | None = Field(default=None, ge=0)
    #: For a map item: the digest naming its stored items (so the item's chunk is read with
    #: the rest of the job's first read).
    items: str | None = Field(default=None, max_length=64)
    #: Why a job for an already-started node is sent again (a resume, a finished child run, a
    #: reconciler pass): keeps its deduplication id apart from the node's first job.
    cause: str | None = Field(default=None, max_length=300)

    def to_message(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)

    @classmethod
    def from_message(cls, body: str | bytes) -> Job:
        if len(body) > MAX_JOB_BYTES:
            raise ValueError(f"job message is {len(body)} bytes; at most {MAX_JOB_BYTES} allowed")
        return cls.model_validate_json(body)

    @property
    def instance(self) -> str:
        """The node instance this job runs (a map item's own, ``<map>[<index>]``)."""
        return self.node_id if self.item is None else map_item_instance(self.node_id, self.item)

    def dedup_id(self) -> str:
        """Stable id of this job (FIFO deduplication and batch entry ids)."""
        # A parked job is sent again with the same attempt: its wake time tells them apart.
        wake = "" if self.not_before is None else f"@{int(self.not_before * 1000)}"
        cause = "" if self.cause is None else f"/{self.cause}"
        return f"{self.run_id}:{self.instance}:{self.attempt}{wake}{cause}"
