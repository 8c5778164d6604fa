"""DynamoDbStatusStore: one small item per run in the status table.

While a run is active its item carries ``activeShard`` (one of a few values) and ``heartbeatAt``:
the sparse ``activeRuns`` index then lists exactly the active runs ordered by heartbeat, so the
reconciler reads only the stale ones. Final runs drop ``activeShard`` and leave the index.
Every item also carries ``status``, ``blueprintId`` and ``createdAt``, which key the
``runsByStatus`` and ``runsByBlueprint`` indexes that :meth:`DynamoDbStatusStore.list_runs` reads
(see :mod:`flowcraft_core.aws.run_listing`).
"""

from __future__ import annotations

import zlib
from typing import Any

from botocore.exceptions import ClientError

from ..distributed.records import FINAL_STATUSES, RUNNING
from .clients import dynamodb_client
from .run_listing import RunPage, list_runs
from .schema import (
    ACTIVE_SHARD_ATTRIBUTE,
    ACTIVE_SHARDS,
    ACTIVE_SINCE_ATTRIBUTE,
    DEFAULT_RETENTION_DAYS,
    STATUS_ACTIVE_INDEX,
)
from .serialization import from_item, to_attribute


def shard_of(run_id: str) -> str:
    return f"active-{zlib.crc32(run_id.encode()) % ACTIVE_SHARDS}"


class DynamoDbStatusStore:
    def __init__(
        self, table_name: str, *, client: Any = None, retention_days: float = DEFAULT_RETENTION_DAYS
    ) -> None:
        self.table_name = table_name
        self.client = client or dynamodb_client()
        self.retention_seconds = retention_days * 86400

    def started(self, run_id: str, blueprint_id: str, now: float) -> bool:
        item = {
            "runId": {"S": run_id},
            "blueprintId": {"S": blueprint_id},
            "status": {"S": RUNNING},
            "createdAt": to_attribute(now),
            "updatedAt": to_attribute(now),
            ACTIVE_SINCE_ATTRIBUTE: to_attribute(now),
            ACTIVE_SHARD_ATTRIBUTE: {"S": shard_of(run_id)},
        }
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=item,
                ConditionExpression="attribute_not_exists(runId)",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def changed(self, run_id: str, status: str, now: float, *, error: str | None = None) -> None:
        names = {
            "#s": "status",
            "#u": "updatedAt",
            "#h": ACTIVE_SINCE_ATTRIBUTE,
            "#a": ACTIVE_SHARD_ATTRIBUTE,
        }
        values: dict[str, Any] = {":s": {"S": status}, ":u": to_attribute(now)}
        sets = ["#s = :s", "#u = :u", "#h = :u"]
        removes: list[str] = []
        if status == RUNNING:
            sets.append("#a = :a")
            values[":a"] = {"S": shard_of(run_id)}
        else:
            removes.append("#a")
        if error:
            names["#e"] = "error"
            values[":e"] = {"S": error[:4000]}
            sets.append("#e = :e")
        if status in FINAL_STATUSES:
            names["#t"] = "ttl"
            values[":t"] = {"N": str(int(now + self.retention_seconds))}
            sets.append("#t = :t")
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        self.client.update_item(
            TableName=self.table_name,
            Key={"runId": {"S": run_id}},
            UpdateExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def heartbeat(self, run_id: str, at: float) -> None:
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key={"runId": {"S": run_id}},
                UpdateExpression="SET #h = :h",
                ConditionExpression="attribute_exists(#a)",
                ExpressionAttributeNames={
                    "#h": ACTIVE_SINCE_ATTRIBUTE,
                    "#a": ACTIVE_SHARD_ATTRIBUTE,
                },
                ExpressionAttributeValues={":h": to_attribute(at)},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def stale(self, before: float, limit: int) -> tuple[list[str], int]:
        found: list[str] = []
        scanned = 0
        for shard in range(ACTIVE_SHARDS):
            kwargs: dict[str, Any] = {
                "TableName": self.table_name,
                "IndexName": STATUS_ACTIVE_INDEX,
                "KeyConditionExpression": "#a = :a AND #h < :h",
                "ExpressionAttributeNames": {
                    "#a": ACTIVE_SHARD_ATTRIBUTE,
                    "#h": ACTIVE_SINCE_ATTRIBUTE,
                },
                "ExpressionAttributeValues": {
                    ":a": {"S": f"active-{shard}"},
                    ":h": to_attribute(before),
                },
                "Limit": min(100, limit),
            }
            while len(found) < limit:
                response = self.client.query(**kwargs)
                items = response.get("Items", [])
                scanned += len(items)
                found.extend(item["runId"]["S"] for item in items)
                last = response.get("LastEvaluatedKey")
                if not last:
                    break
                kwargs["ExclusiveStartKey"] = last
        return found[:limit], scanned

    def list_runs(
        self,
        *,
        status: str | None = None,
        blueprint_id: str | None = None,
        limit: int = 20,
        next_token: str | None = None,
    ) -> RunPage:
        """A page of runs, newest first, through the status table's indexes (``GET /runs``)."""
        return list_runs(
            self.client,
            self.table_name,
            status=status,
            blueprint_id=blueprint_id,
            limit=limit,
            next_token=next_token,
        )

    def get(self, run_id: str) -> dict[str, Any] | None:
        response = self.client.get_item(
            TableName=self.table_name, Key={"runId": {"S": run_id}}, ConsistentRead=True
        )
        item = response.get("Item")
        return from_item(item) if item else None
