"""List runs newest first from the status table's indexes (``GET /runs``), never with a scan.

Which index each filter queries and what a page token holds: docs/design.md, section 6,
"Listing runs".
"""

from __future__ import annotations

import base64
import binascii
import heapq
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from ..distributed.records import iso_utc
from ..errors import FlowcraftError
from ..status import RUN_STATUSES
from .schema import (
    CREATED_AT_ATTRIBUTE,
    STATUS_BY_BLUEPRINT_INDEX,
    STATUS_BY_STATUS_INDEX,
    TTL_ATTRIBUTE,
)
from .serialization import from_item

MAX_PAGE_SIZE = 100
_TOKEN_VERSION = 1


class InvalidPageToken(FlowcraftError, ValueError):
    """A ``nextToken`` this query did not hand out (corrupt, or from other filters)."""


@dataclass(frozen=True)
class RunSummary:
    """One row of ``GET /runs``: what the status table knows about a run."""

    run_id: str
    blueprint_id: str
    status: str
    created_at: float
    updated_at: float
    error: str | None = None

    def to_api(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "runId": self.run_id,
            "blueprintId": self.blueprint_id,
            "status": self.status,
            "createdAt": iso_utc(self.created_at),
            "updatedAt": iso_utc(self.updated_at),
        }
        if self.error:
            body["error"] = self.error
        return body


@dataclass(frozen=True)
class RunPage:
    items: list[RunSummary] = field(default_factory=list)
    next_token: str | None = None


@dataclass(frozen=True)
class _Partition:
    index: str
    key_name: str
    key_value: str


def _plan(status: str | None, blueprint_id: str | None) -> tuple[list[_Partition], str | None]:
    """The index partitions to read, and the status to filter on (if any)."""
    if blueprint_id is not None:
        return [_Partition(STATUS_BY_BLUEPRINT_INDEX, "blueprintId", blueprint_id)], status
    statuses = [status] if status is not None else list(RUN_STATUSES)
    return [_Partition(STATUS_BY_STATUS_INDEX, "status", s) for s in statuses], None


def _query_name(status: str | None, blueprint_id: str | None) -> str:
    return json.dumps([status, blueprint_id])


def encode_token(query: str, cursors: dict[str, Any]) -> str:
    raw = json.dumps({"v": _TOKEN_VERSION, "q": query, "c": cursors}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_token(token: str, query: str) -> dict[str, Any]:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()).decode())
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidPageToken("nextToken is not a token this API handed out") from None
    if not isinstance(data, dict) or data.get("v") != _TOKEN_VERSION:
        raise InvalidPageToken("nextToken is not a token this API handed out")
    if data.get("q") != query:
        raise InvalidPageToken(
            "nextToken belongs to a listing with other filters; pass the same status and "
            "blueprintId as the request that returned it"
        )
    cursors = data.get("c")
    if not isinstance(cursors, dict):
        raise InvalidPageToken("nextToken is not a token this API handed out")
    return cursors


def list_runs(
    client: Any,
    table_name: str,
    *,
    status: str | None = None,
    blueprint_id: str | None = None,
    limit: int = 20,
    next_token: str | None = None,
    now: float | None = None,
) -> RunPage:
    """A page of runs, newest first (docs/design.md, section 6, "Listing runs")."""
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    partitions, status_filter = _plan(status, blueprint_id)
    query = _query_name(status, blueprint_id)
    if next_token:
        cursors = decode_token(next_token, query)
        unknown = set(cursors) - {p.key_value for p in partitions}
        if unknown:
            raise InvalidPageToken("nextToken is not a token this API handed out")
        partitions = [p for p in partitions if p.key_value in cursors]
    else:
        cursors = {p.key_value: None for p in partitions}
    now = time.time() if now is None else now

    fetched: dict[str, tuple[list[dict[str, Any]], dict[str, Any] | None]] = {}
    for partition in partitions:
        fetched[partition.key_value] = _query(
            client, table_name, partition, limit, cursors[partition.key_value], status_filter, now
        )

    # Merge newest first; each partition's items already come newest first.
    tagged = (
        [(_sort_key(item), value, item) for item in items] for value, (items, _) in fetched.items()
    )
    # heapq.merge keeps each partition's order, so what a page uses is a prefix of each list.
    chosen = list(itertools.islice(heapq.merge(*tagged, key=lambda t: t[0]), limit))

    used: dict[str, int] = {}
    last_used: dict[str, dict[str, Any]] = {}
    for _, value, item in chosen:
        used[value] = used.get(value, 0) + 1
        last_used[value] = item
    remaining: dict[str, Any] = {}
    by_value = {p.key_value: p for p in partitions}
    for value, (items, last_key) in fetched.items():
        count = used.get(value, 0)
        if count == len(items):
            if last_key is not None:
                remaining[value] = last_key
        elif count == 0:
            remaining[value] = cursors[value]
        else:
            remaining[value] = _index_key(last_used[value], by_value[value])
    token = encode_token(query, remaining) if remaining else None
    return RunPage(items=[_summary(item) for _, _, item in chosen], next_token=token)


def _sort_key(item: dict[str, Any]) -> tuple[float, str]:
    created = float(item[CREATED_AT_ATTRIBUTE]["N"])
    return (-created, item["runId"]["S"])


def _index_key(item: dict[str, Any], partition: _Partition) -> dict[str, Any]:
    return {
        "runId": item["runId"],
        partition.key_name: item[partition.key_name],
        CREATED_AT_ATTRIBUTE: item[CREATED_AT_ATTRIBUTE],
    }


def _query(
    client: Any,
    table_name: str,
    partition: _Partition,
    limit: int,
    start: dict[str, Any] | None,
    status_filter: str | None,
    now: float,
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    names = {"#k": partition.key_name, "#t": TTL_ATTRIBUTE}
    values: dict[str, Any] = {":k": {"S": partition.key_value}, ":now": {"N": str(int(now))}}
    filters = ["(attribute_not_exists(#t) OR #t > :now)"]
    if status_filter is not None:
        names["#s"] = "status"
        values[":s"] = {"S": status_filter}
        filters.append("#s = :s")
    kwargs: dict[str, Any] = {
        "TableName": table_name,
        "IndexName": partition.index,
        "KeyConditionExpression": "#k = :k",
        "FilterExpression": " AND ".join(filters),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
        "ScanIndexForward": False,
        "Limit": limit,
    }
    if start:
        kwargs["ExclusiveStartKey"] = start
    response = client.query(**kwargs)
    return list(response.get("Items", [])), response.get("LastEvaluatedKey")


def _summary(item: dict[str, Any]) -> RunSummary:
    plain = from_item(item)
    return RunSummary(
        run_id=str(plain["runId"]),
        blueprint_id=str(plain.get("blueprintId", "")),
        status=str(plain.get("status", "")),
        created_at=float(plain.get(CREATED_AT_ATTRIBUTE) or 0),
        updated_at=float(plain.get("updatedAt") or plain.get(CREATED_AT_ATTRIBUTE) or 0),
        error=plain.get("error"),
    )
