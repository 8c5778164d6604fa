"""DynamoDbContext: a run's context read and written directly in the context table.

For scripts and tools that look into a run from outside (nodes inside the worker get a
buffered context that commits with the node). Reads are strongly consistent; ``patch`` writes
several keys in one request.
"""

from __future__ import annotations

from typing import Any

from ..context import check_key
from .clients import dynamodb_client
from .serialization import from_attribute, to_attribute


class DynamoDbContext:
    def __init__(self, table_name: str, run_id: str, *, client: Any = None) -> None:
        self.table_name = table_name
        self.run_id = run_id
        self.client = client or dynamodb_client()

    def _key(self) -> dict[str, Any]:
        return {"runId": {"S": self.run_id}}

    async def get(self, key: str, default: Any = None) -> Any:
        response = self.client.get_item(
            TableName=self.table_name,
            Key=self._key(),
            ConsistentRead=True,
            ProjectionExpression="#c.#k",
            ExpressionAttributeNames={"#c": "context", "#k": key},
        )
        context = response.get("Item", {}).get("context", {}).get("M", {})
        return from_attribute(context[key]) if key in context else default

    async def set(self, key: str, value: Any) -> None:
        await self.patch({key: value})

    async def patch(self, values: dict[str, Any], delete: list[str] | None = None) -> None:
        names: dict[str, str] = {"#c": "context"}
        attr_values: dict[str, Any] = {}
        sets: list[str] = []
        removes: list[str] = []
        for index, (key, value) in enumerate(values.items()):
            names[f"#k{index}"] = check_key(key)
            attr_values[f":v{index}"] = to_attribute(value)
            sets.append(f"#c.#k{index} = :v{index}")
        for index, key in enumerate(delete or []):
            names[f"#d{index}"] = key
            removes.append(f"#c.#d{index}")
        if not sets and not removes:
            return
        expression = ("SET " + ", ".join(sets) if sets else "") + (
            " REMOVE " + ", ".join(removes) if removes else ""
        )
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": self._key(),
            "UpdateExpression": expression.strip(),
            "ConditionExpression": "attribute_exists(runId)",
            "ExpressionAttributeNames": names,
        }
        if attr_values:
            kwargs["ExpressionAttributeValues"] = attr_values
        self.client.update_item(**kwargs)

    async def has(self, key: str) -> bool:
        sentinel = object()
        return await self.get(key, sentinel) is not sentinel

    async def delete(self, key: str) -> None:
        await self.patch({}, delete=[key])

    async def to_dict(self) -> dict[str, Any]:
        response = self.client.get_item(
            TableName=self.table_name,
            Key=self._key(),
            ConsistentRead=True,
            ProjectionExpression="#c",
            ExpressionAttributeNames={"#c": "context"},
        )
        context = response.get("Item", {}).get("context")
        return from_attribute(context) if context else {}
