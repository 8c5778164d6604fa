"""Status vocabularies shared by the runtime, the distributed driver, the API and Mermaid."""

from typing import Literal

RunStatus = Literal["running", "completed", "failed", "awaiting", "cancelled"]
NodeStatus = Literal[
    "pending", "running", "completed", "failed", "skipped", "awaiting", "cancelled"
]

FINAL_RUN_STATUSES: frozenset[str] = frozenset({"completed", "failed", "cancelled"})
