"""The API's answers as pydantic models (camelCase on the wire, snake_case in Python).

They accept fields they do not name (``extra="allow"``): the API grows (node details, retry
times) and an older client must keep working against a newer API. Timestamps are accepted as
ISO 8601 text or epoch seconds, the two forms the API has used.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from ..status import FINAL, NODE_DONE

FINAL_STATUSES = FINAL
#: Node statuses that mean "this node is settled" for progress counts.
SETTLED_NODE_STATUSES = NODE_DONE

Timestamp = float | str | None


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")


class RunAccepted(_Model):
    """``202`` from start, resume, cancel and redrive."""

    run_id: str
    status: str | None = None
    node_id: str | None = None


class Run(_Model):
    """``GET /runs/{runId}``."""

    run_id: str
    blueprint_id: str
    status: str
    context: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    created_at: Timestamp = None
    updated_at: Timestamp = None
    nodes: dict[str, Any] | None = None
    outputs: dict[str, Any] | None = None
    timeline: list[dict[str, Any]] | None = None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def node_statuses(self) -> dict[str, str]:
        """node id -> status (``nodes`` holds a status, or an object with a ``status``)."""
        statuses: dict[str, str] = {}
        for node_id, value in (self.nodes or {}).items():
            if isinstance(value, dict):
                statuses[node_id] = str(value.get("status", "unknown"))
            else:
                statuses[node_id] = str(value)
        return statuses


class RunSummary(_Model):
    """One row of ``GET /runs``."""

    run_id: str
    blueprint_id: str
    status: str
    created_at: Timestamp = None
    updated_at: Timestamp = None
    error: str | None = None


class RunPage(_Model):
    items: list[RunSummary] = Field(default_factory=list)
    next_token: str | None = None


class NodePage(_Model):
    """``GET /runs/{runId}/nodes``: node results, one page."""

    items: list[dict[str, Any]] = Field(default_factory=list)
    next_token: str | None = None


def as_datetime(value: Timestamp) -> datetime | None:
    """An API timestamp (ISO 8601 text or epoch seconds) as an aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(float(value), tz=UTC)
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
