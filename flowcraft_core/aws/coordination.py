"""DynamoDbCoordinationStore: counters, locks and leases in the coordination table.

DynamoDB's TTL deletes expired items late (up to days), so every read and every condition
here compares ``ttl`` with the current time itself: an expired lock is free, an expired counter
starts again from zero.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from .clients import dynamodb_client
from .serialization import from_attribute, to_attribute


def _conditional_failed(exc: ClientError) -> bool:
    return exc.response["Error"]["Code"] == "ConditionalCheckFailedException"


class DynamoDbCoordinationStore:
    def __init__(
        self, table_name: str, *, client: Any = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.table_name = table_name
        self.client = client or dynamodb_client()
        self.clock = clock

    def _key(self, key: str) -> dict[str, Any]:
        return {"key": {"S": key}}

    def _expiry(self, ttl_seconds: float) -> dict[str, str]:
        return {"N": str(int(self.clock() + ttl_seconds))}

    def _now(self) -> dict[str, str]:
        return {"N": str(int(self.clock()))}

    def set_if_not_exist(self, key: str, value: Any, ttl_seconds: float) -> bool:
        """Take ``key`` if it is free or expired; False when someone else holds it."""
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item={
                    "key": {"S": key},
                    "value": to_attribute(value),
                    "ttl": self._expiry(ttl_seconds),
                },
                ConditionExpression="attribute_not_exists(#k) OR #t <= :now",
                ExpressionAttributeNames={"#k": "key", "#t": "ttl"},
                ExpressionAttributeValues={":now": self._now()},
            )
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    def increment(self, key: str, ttl_seconds: float) -> int:
        """Add one and return the new count (an expired counter restarts at one)."""
        try:
            response = self.client.update_item(
                TableName=self.table_name,
                Key=self._key(key),
                UpdateExpression="ADD #v :one SET #t = :ttl",
                ConditionExpression="attribute_not_exists(#k) OR #t > :now",
                ExpressionAttributeNames={"#v": "value", "#t": "ttl", "#k": "key"},
                ExpressionAttributeValues={
                    ":one": {"N": "1"},
                    ":ttl": self._expiry(ttl_seconds),
                    ":now": self._now(),
                },
                ReturnValues="UPDATED_NEW",
            )
            return int(from_attribute(response["Attributes"]["value"]))
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item={"key": {"S": key}, "value": {"N": "1"}, "ttl": self._expiry(ttl_seconds)},
                ConditionExpression="#t <= :now",
                ExpressionAttributeNames={"#t": "ttl"},
                ExpressionAttributeValues={":now": self._now()},
            )
            return 1
        except ClientError as exc:
            if _conditional_failed(exc):
                return self.increment(key, ttl_seconds)  # someone restarted it first
            raise

    def extend_ttl(self, key: str, ttl_seconds: float) -> bool:
        """Push a live key's expiry out; False when it is gone or expired."""
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=self._key(key),
                UpdateExpression="SET #t = :ttl",
                ConditionExpression="attribute_exists(#k) AND #t > :now",
                ExpressionAttributeNames={"#t": "ttl", "#k": "key"},
                ExpressionAttributeValues={":ttl": self._expiry(ttl_seconds), ":now": self._now()},
            )
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    def get(self, key: str) -> Any:
        """The value, or None when missing or expired (even if TTL has not deleted it yet)."""
        response = self.client.get_item(
            TableName=self.table_name, Key=self._key(key), ConsistentRead=True
        )
        item = response.get("Item")
        if not item:
            return None
        if int(item.get("ttl", {}).get("N", "0")) <= int(self.clock()):
            return None
        return from_attribute(item["value"]) if "value" in item else None

    def delete(self, key: str) -> None:
        self.client.delete_item(TableName=self.table_name, Key=self._key(key))
