"""``GET /runs``: newest first, filtered through the status table's indexes, paged by nextToken.

Status items are written with the store's own ``started``/``changed`` (fixed clocks, so the order
is known); the route is called over HTTP through the local API server, query string and all.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from flowcraft_core.aws.run_listing import RUN_STATUSES, decode_token, encode_token
from flowcraft_core.aws.status_store import DynamoDbStatusStore
from handlers import api
from local.api_server import serve_api, shutdown_api
from tests.test_handlers import Stack, stack

__all__ = ["stack"]

T0 = 1_800_000_000.0


@pytest.fixture
def url(stack: Stack) -> Iterator[str]:
    server, thread, base = serve_api(api.handler, port=0)
    yield base
    shutdown_api(server, thread)


def seed(stack: Stack, runs: list[tuple[str, str, str]]) -> DynamoDbStatusStore:
    """(run id, blueprint id, status), oldest first, one second apart."""
    store = DynamoDbStatusStore(stack.settings["FLOWCRAFT_STATUS_TABLE"])
    for n, (run_id, blueprint_id, status) in enumerate(runs):
        store.started(run_id, blueprint_id, T0 + n)
        if status != "running":
            store.changed(
                run_id, status, T0 + n + 0.5, error="boom" if status == "failed" else None
            )
    return store


def get(url: str, query: str = "") -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(f"{url}/runs{query}", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


RUNS = [
    ("r1", "order", "completed"),
    ("r2", "approval", "awaiting"),
    ("r3", "order", "failed"),
    ("r4", "order", "running"),
    ("r5", "approval", "completed"),
    ("r6", "order", "completed"),
    ("r7", "flaky", "cancelled"),
]


def test_all_runs_newest_first_across_statuses_in_pages(stack: Stack, url: str) -> None:
    seed(stack, RUNS)
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        status, body = get(url, f"?limit=3{token}")
        assert status == 200, body
        seen += [item["runId"] for item in body["items"]]
        pages += 1
        if "nextToken" not in body:
            break
        token = f"&nextToken={body['nextToken']}"
    assert seen == ["r7", "r6", "r5", "r4", "r3", "r2", "r1"]
    assert pages == 3


def test_filters_by_status_and_blueprint(stack: Stack, url: str) -> None:
    seed(stack, RUNS)
    _, completed = get(url, "?status=completed")
    assert [i["runId"] for i in completed["items"]] == ["r6", "r5", "r1"]
    assert "nextToken" not in completed
    first = completed["items"][0]
    assert first["blueprintId"] == "order" and first["status"] == "completed"
    assert first["createdAt"] == "2027-01-15T08:00:05.000Z"
    _, orders = get(url, "?blueprintId=order")
    assert [i["runId"] for i in orders["items"]] == ["r6", "r4", "r3", "r1"]
    _, failed_orders = get(url, "?blueprintId=order&status=failed")
    assert failed_orders["items"] == [
        {
            "runId": "r3",
            "blueprintId": "order",
            "status": "failed",
            "createdAt": "2027-01-15T08:00:02.000Z",
            "updatedAt": "2027-01-15T08:00:02.500Z",
            "error": "boom",
        }
    ]


def test_pages_of_one_blueprint_continue_where_they_stopped(stack: Stack, url: str) -> None:
    seed(stack, RUNS)
    _, first = get(url, "?blueprintId=order&limit=2")
    _, second = get(url, f"?blueprintId=order&limit=2&nextToken={first['nextToken']}")
    assert [i["runId"] for i in first["items"] + second["items"]] == ["r6", "r4", "r3", "r1"]


def test_bad_queries_are_400_with_the_reason(stack: Stack, url: str) -> None:
    seed(stack, RUNS)
    status, body = get(url, "?status=done")
    assert status == 400 and body["errors"][0]["field"] == "status"
    status, body = get(url, "?limit=0")
    assert status == 400 and body["errors"][0]["field"] == "limit"
    status, body = get(url, "?nextToken=not-a-token")
    assert (status, body["message"]) == (
        400,
        "invalid request: nextToken is not a token this API handed out",
    )
    _, page = get(url, "?status=completed&limit=1")
    status, body = get(url, f"?status=awaiting&nextToken={page['nextToken']}")
    assert status == 400 and "other filters" in body["message"]


def test_no_runs_is_an_empty_page(stack: Stack, url: str) -> None:
    assert get(url) == (200, {"items": []})


def test_expired_items_are_left_out(stack: Stack) -> None:
    store = seed(stack, [("old", "order", "completed"), ("new", "order", "completed")])
    page = store.list_runs()
    assert [r.run_id for r in page.items] == ["new", "old"]
    later = T0 + store.retention_seconds + 10
    from flowcraft_core.aws.run_listing import list_runs

    page = list_runs(store.client, store.table_name, now=later)
    assert page.items == []


def test_token_round_trip_is_opaque_url_safe_text() -> None:
    token = encode_token("q", {"completed": {"runId": {"S": "a/b+c"}}})
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert decode_token(token, "q") == {"completed": {"runId": {"S": "a/b+c"}}}
    assert len(RUN_STATUSES) == 5
