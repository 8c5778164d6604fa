"""DynamoDbContext: a run's context read and written directly, from outside the run.

For scripts and tools that look into a run (nodes inside the worker get a buffered context that
commits with the node). The context lives in the run's head item; values too large for it are
read through their references (the writer's item or the payload bucket) like the worker does.
"""

from __future__ import annotations

from typing import Any

from ..context import check_key
from ..distributed.items import Cond, ConditionFailed, Update
from ..distributed.layout import head_key
from ..distributed.state import RunItems
from .adapter import run_items


class DynamoDbContext:
    def __init__(
        self,
        table_name: str,
        run_id: str,
        *,
        payload_bucket: str | None = None,
        runs: RunItems | None = None,
    ) -> None:
        self.run_id = run_id
        self.runs = runs or run_items(table_name, payload_bucket)

    def _stored(self) -> dict[str, Any]:
        head = self.runs.head(self.run_id)
        if head is None:
            raise LookupError(f"run {self.run_id!r} does not exist")
        return head.context

    async def get(self, key: str, default: Any = None) -> Any:
        stored = self._stored()
        if key not in stored:
            return default
        return self.runs.context_value(self.run_id, key, stored[key])

    async def set(self, key: str, value: Any) -> None:
        await self.patch({key: value})

    async def patch(self, values: dict[str, Any], delete: list[str] | None = None) -> None:
        update = Update()
        for key, value in values.items():
            update.set[("ctx", check_key(key))] = self.runs.codec.encode(
                value, run_id=self.run_id, name=f"context-{key}", where=f"context.{key}"
            )
        for key in delete or []:
            update.remove.append(("ctx", key))
        if not update:
            return
        try:
            self.runs.items.update(head_key(self.run_id), update, ((Cond(("runId",), "exists"),),))
        except ConditionFailed:
            raise LookupError(f"run {self.run_id!r} does not exist") from None

    async def has(self, key: str) -> bool:
        return key in self._stored()

    async def delete(self, key: str) -> None:
        await self.patch({}, delete=[key])

    async def to_dict(self) -> dict[str, Any]:
        return {k: self.runs.context_value(self.run_id, k, v) for k, v in self._stored().items()}
