"""JSON-like values to and from DynamoDB's attribute format.

DynamoDB stores numbers as decimals: floats go in as ``Decimal`` (via their JSON text, so 0.1
stays 0.1) and come back as ``int`` when integral, else ``float``. Values that are not
JSON-serialisable are refused with a TypeError that the worker reports against the node.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _to_dynamo_value(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    # Anything else: go through JSON once (converts tuples, refuses objects) with exact floats.
    try:
        return json.loads(json.dumps(value), parse_float=Decimal)
    except (TypeError, ValueError) as exc:
        raise TypeError(str(exc)) from None


def to_attribute(value: Any) -> Any:
    return _serializer.serialize(_to_dynamo_value(value))


def from_attribute(attribute: Any) -> Any:
    return _plain(_deserializer.deserialize(attribute))


def to_item(data: dict[str, Any]) -> dict[str, Any]:
    return {k: to_attribute(v) for k, v in data.items()}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: from_attribute(v) for k, v in item.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, set):
        return sorted(_plain(v) for v in value)
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    return value
