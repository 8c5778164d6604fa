"""DynamoDbItemStore: the item-store primitives on a DynamoDB table keyed by ``runId``.

Conditions and updates arrive as data (``distributed.items``) and are rendered here into
expressions with placeholders for every name and value, so no attribute name or user value is
ever spliced into an expression. Reads are strongly consistent; batches are chunked to
DynamoDB's limits and unprocessed keys are retried.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from ..distributed.items import (
    Condition,
    ConditionFailed,
    Item,
    ItemTooLarge,
    Path,
    Update,
    Write,
)
from .clients import dynamodb_client

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()
KEY = "runId"


def to_dynamo(value: Any) -> Any:
    """Python values as DynamoDB wants them: floats as exact decimals, sets kept as sets."""
    if isinstance(value, bool) or value is None or isinstance(value, str | int | bytes):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, Mapping):
        return {str(k): to_dynamo(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return {to_dynamo(v) for v in value}
    if isinstance(value, list | tuple):
        return [to_dynamo(v) for v in value]
    if isinstance(value, Decimal | bytearray):
        return value
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def to_attribute(value: Any) -> Any:
    return _serializer.serialize(to_dynamo(value))


def from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Binary):
        return bytes(value.value)  # type: ignore[attr-defined]
    if isinstance(value, dict):
        return {k: from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_dynamo(v) for v in value]
    if isinstance(value, set):
        return {from_dynamo(v) for v in value}
    return value


def from_item(item: Mapping[str, Any]) -> Item:
    return {k: from_dynamo(_deserializer.deserialize(v)) for k, v in item.items()}


class _Expression:
    """Placeholders for names and values, shared by a condition and an update."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self._by_name: dict[str, str] = {}
        self.values: dict[str, Any] = {}

    def path(self, path: Path) -> str:
        parts = []
        for part in path:
            placeholder = self._by_name.get(part)
            if placeholder is None:
                placeholder = f"#n{len(self.names)}"
                self.names[placeholder] = part
                self._by_name[part] = placeholder
            parts.append(placeholder)
        return ".".join(parts)

    def value(self, value: Any) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = to_attribute(value)
        return placeholder

    def condition(self, condition: Condition) -> str | None:
        groups = []
        for group in condition:
            tests = []
            for cond in group:
                path = self.path(cond.path)
                if cond.op == "exists":
                    tests.append(f"attribute_exists({path})")
                elif cond.op == "absent":
                    tests.append(f"attribute_not_exists({path})")
                elif cond.op == "eq":
                    tests.append(f"{path} = {self.value(cond.value)}")
                elif cond.op == "ne":
                    tests.append(f"{path} <> {self.value(cond.value)}")
                elif cond.op == "lt":
                    tests.append(f"{path} < {self.value(cond.value)}")
                else:
                    options = ", ".join(self.value(v) for v in cond.value)
                    tests.append(f"{path} IN ({options})")
            groups.append("(" + " OR ".join(tests) + ")")
        return " AND ".join(groups) if groups else None

    def update(self, update: Update) -> str:
        sets = [f"{self.path(p)} = {self.value(v)}" for p, v in update.set.items()]
        for p, v in update.set_if_absent.items():
            path = self.path(p)
            sets.append(f"{path} = if_not_exists({path}, {self.value(v)})")
        adds = [f"{self.path(p)} {self.value(v)}" for p, v in update.add.items() if v != set()]
        deletes = [f"{self.path(p)} {self.value(v)}" for p, v in update.delete.items() if v]
        removes = [self.path(p) for p in update.remove]
        parts = []
        if sets:
            parts.append("SET " + ", ".join(sets))
        if adds:
            parts.append("ADD " + ", ".join(adds))
        if deletes:
            parts.append("DELETE " + ", ".join(deletes))
        if removes:
            parts.append("REMOVE " + ", ".join(removes))
        return " ".join(parts)

    def arguments(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        if self.names:
            found["ExpressionAttributeNames"] = self.names
        if self.values:
            found["ExpressionAttributeValues"] = self.values
        return found


def _too_large(exc: ClientError) -> bool:
    error = exc.response["Error"]
    return (
        error["Code"] == "ValidationException" and "item size" in error.get("Message", "").lower()
    )


class DynamoDbItemStore:
    def __init__(self, table_name: str, *, client: Any = None) -> None:
        self.table_name = table_name
        self.client = client or dynamodb_client()

    def _key(self, key: str) -> dict[str, Any]:
        return {KEY: {"S": key}}

    def get_many(self, keys: Sequence[str]) -> dict[str, Item]:
        found: dict[str, Item] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 100):
            request: dict[str, Any] = {
                self.table_name: {
                    "Keys": [self._key(k) for k in unique[start : start + 100]],
                    "ConsistentRead": True,
                }
            }
            pause = 0.05
            while request:
                response = self.client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self.table_name, []):
                    found[item[KEY]["S"]] = from_item(item)
                request = response.get("UnprocessedKeys") or {}
                if request:
                    time.sleep(pause)
                    pause = min(1.0, pause * 2)
        return found

    def put(self, key: str, item: Item, condition: Condition = ()) -> None:
        expression = _Expression()
        rendered = expression.condition(condition)
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "Item": {k: to_attribute(v) for k, v in {**item, KEY: key}.items()},
        }
        if rendered:
            kwargs["ConditionExpression"] = rendered
            kwargs["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
            kwargs.update(expression.arguments())
        try:
            self.client.put_item(**kwargs)
        except ClientError as exc:
            self._raise(exc)

    def update(self, key: str, update: Update, condition: Condition = ()) -> Item:
        expression = _Expression()
        rendered = expression.condition(condition)
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": self._key(key),
            "UpdateExpression": expression.update(update),
            "ReturnValues": "ALL_NEW",
        }
        if rendered:
            kwargs["ConditionExpression"] = rendered
            kwargs["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        kwargs.update(expression.arguments())
        try:
            response = self.client.update_item(**kwargs)
        except ClientError as exc:
            self._raise(exc)
        return from_item(response["Attributes"])

    def transact(self, writes: Sequence[Write]) -> None:
        entries = []
        for write in writes:
            expression = _Expression()
            rendered = expression.condition(write.condition)
            entry: dict[str, Any] = {"TableName": self.table_name}
            if write.put is not None:
                entry["Item"] = {
                    k: to_attribute(v) for k, v in {**write.put, KEY: write.key}.items()
                }
                kind = "Put"
            else:
                entry["Key"] = self._key(write.key)
                entry["UpdateExpression"] = expression.update(write.update or Update())
                kind = "Update"
            if rendered:
                entry["ConditionExpression"] = rendered
                entry["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
            entry.update(expression.arguments())
            entries.append({kind: entry})
        try:
            self.client.transact_write_items(TransactItems=entries)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "TransactionCanceledException":
                reasons = exc.response.get("CancellationReasons") or []
                for index, reason in enumerate(reasons):
                    if reason.get("Code") == "ConditionalCheckFailed":
                        item = reason.get("Item")
                        raise ConditionFailed(from_item(item) if item else None, index) from None
                message = exc.response["Error"].get("Message", "")
                if "item size" in message.lower() or any(
                    r.get("Code") == "ValidationError" for r in reasons
                ):
                    raise ItemTooLarge(f"DynamoDB refused the write: {message}") from None
            self._raise(exc)

    @staticmethod
    def _raise(exc: ClientError) -> Any:
        if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
            item: Any = exc.response.get("Item")
            raise ConditionFailed(from_item(item) if item else None) from None
        if _too_large(exc):
            raise ItemTooLarge(
                f"DynamoDB refused the write: {exc.response['Error'].get('Message')}"
            ) from None
        raise exc
