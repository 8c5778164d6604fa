"""``handlers.api`` route by route: bad input answers 4xx with a JSON message and writes nothing.

Runs against the moto server like ``test_handlers.py`` (whose fixtures and helpers it reuses).
"Writes nothing" is checked the expensive, certain way: the queue's message counts and a Scan
of every table.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from flowcraft_core.routes import ROUTES
from handlers import api
from tests.test_handlers import Stack, stack

__all__ = ["stack"]  # the fixture, imported for this module's tests

EMPTY_TABLES = {"context": 0, "status": 0, "coordination": 0}


def assert_untouched(stack: Stack) -> None:
    assert stack.queue_depth() == 0
    assert stack.table_items() == EMPTY_TABLES


@pytest.mark.parametrize(
    ("raw", "status", "expected"),
    [
        ('{"context": {}}', 400, "blueprintId: Field required"),
        (
            '{"blueprintId": "order", "context": [1, 2]}',
            400,
            "context: Input should be a valid dictionary",
        ),
        ('{"blueprintId": 7}', 400, "blueprintId: Input should be a valid string"),
        ('{"blueprintId": ""}', 400, "blueprintId: String should have at least 1 character"),
        (
            '{"blueprintId": "order", "runId": "has space"}',
            400,
            "runId: String should match pattern",
        ),
        (
            '{"blueprintId": "order", "runId": "' + "x" * 201 + '"}',
            400,
            "runId: String should have at most 200",
        ),
        ('{"blueprintId": "order", "contxt": {}}', 400, "contxt: unknown field"),
        ("not json", 400, "request body is not valid JSON"),
        ('{"blueprintId": "order",', 400, "request body is not valid JSON"),
        ("[1]", 400, "body: must be a JSON object"),
        ("", 400, "body: a JSON object is required"),
        (
            '{"blueprintId": "nope"}',
            400,
            "unknown blueprint 'nope'; known blueprints: approval, flaky, hooked, order, sleepy, slow",
        ),
    ],
)
def test_start_with_bad_input_is_refused_and_writes_nothing(
    stack: Stack, raw: str, status: int, expected: str
) -> None:
    got, body = stack.call_api("POST", "/runs", raw=raw)
    assert got == status
    assert expected in body["message"], body
    assert_untouched(stack)


def test_field_errors_are_listed_one_by_one(stack: Stack) -> None:
    status, body = stack.call_api("POST", "/runs", {"context": [], "runId": "a b"})
    assert status == 400
    fields = {e["field"]: e["type"] for e in body["errors"]}
    assert fields == {
        "blueprintId": "missing",
        "context": "dict_type",
        "runId": "string_pattern_mismatch",
    }
    assert all(e["message"] for e in body["errors"])


def test_unknown_blueprint_lists_the_known_ones(stack: Stack) -> None:
    status, body = stack.call_api("POST", "/runs", {"blueprintId": "ordr"})
    assert status == 400
    assert body["knownBlueprints"] == ["approval", "flaky", "hooked", "order", "sleepy", "slow"]


def test_oversized_body_is_413_before_parsing(stack: Stack) -> None:
    huge = json.dumps({"blueprintId": "order", "context": {"blob": "x" * api.MAX_BODY_BYTES}})
    status, body = stack.call_api("POST", "/runs", raw=huge)
    assert status == 413
    assert f"at most {api.MAX_BODY_BYTES}" in body["message"]
    # Multi-byte characters count as bytes, and base64 bodies by their decoded size.
    status, _ = stack.call_api("POST", "/runs", raw='"' + "é" * (api.MAX_BODY_BYTES // 2 + 1) + '"')
    assert status == 413
    status, _ = stack.call_api("POST", "/runs", raw=huge, base64_body=True)
    assert status == 413
    status, _ = stack.call_api("POST", "/runs/x/resume", raw=huge)
    assert status == 413
    assert_untouched(stack)


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/runs/ghost"), ("POST", "/runs/ghost/resume"), ("POST", "/runs/ghost/cancel")],
)
def test_unknown_run_is_404(stack: Stack, method: str, path: str) -> None:
    status, body = stack.call_api(method, path)
    assert status == 404
    assert body["message"] == "run 'ghost' does not exist"
    assert_untouched(stack)


def test_overlong_run_id_in_the_path_is_400(stack: Stack) -> None:
    # Paths allow longer ids than a start does (a child run's id extends its parent's).
    status, body = stack.call_api("GET", "/runs/" + "r" * 1001)
    assert status == 400
    assert body["errors"][0]["field"] == "runId"


def test_unknown_route_is_a_json_404(stack: Stack) -> None:
    status, body = stack.call_api("DELETE", "/runs")
    assert status == 404
    assert "no route for DELETE /runs" in body["message"]
    assert "POST /runs" in body["message"]


def test_start_is_idempotent_for_a_run_id(stack: Stack) -> None:
    first = stack.call_api("POST", "/runs", {"blueprintId": "order", "runId": "order-42"})
    again = stack.call_api("POST", "/runs", {"blueprintId": "order", "runId": "order-42"})
    assert first == again == (202, {"runId": "order-42", "status": "running"})
    assert stack.queue_depth() == 1  # one start job, not two
    status, body = stack.call_api("POST", "/runs", {"blueprintId": "approval", "runId": "order-42"})
    assert status == 409
    assert "order-42" in body["message"]
    assert stack.queue_depth() == 1


def test_curl_style_form_content_type_still_parses_as_json(stack: Stack) -> None:
    status, body = stack.call_api(
        "POST",
        "/runs",
        {"blueprintId": "order", "runId": "from-curl"},
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (status, body) == (202, {"runId": "from-curl", "status": "running"})


def test_resume_rules(stack: Stack) -> None:
    run_id = stack.start()
    status, body = stack.call_api("POST", f"/runs/{run_id}/resume", {})
    assert status == 409
    assert body["status"] == "running"
    assert "not awaiting" in body["message"]

    stack.start("approval", runId="ask-1")
    stack.drain()
    assert stack.get("ask-1")["status"] == "awaiting"
    status, body = stack.call_api("POST", "/runs/ask-1/resume", {"nodeId": "submit"})
    assert status == 409
    assert "'submit' (not waiting; waiting: manager_approval)" in body["message"]
    status, body = stack.call_api("POST", "/runs/ask-1/resume", {"nodeId": "x", "extra": 1})
    assert status == 400
    assert body["errors"] == [
        {"field": "extra", "message": "unknown field", "type": "extra_forbidden"}
    ]
    # A misspelt action (or none, with no default edge) would skip every branch: refused.
    for request in ({"action": "aprove"}, None):
        status, body = stack.call_api("POST", "/runs/ask-1/resume", request)
        assert status == 400, body
        assert body["validActions"] == ["approve", "reject"]
        assert "valid actions: 'approve', 'reject'" in body["message"]
    assert stack.get("ask-1")["status"] == "awaiting"  # nothing was written
    status, body = stack.call_api("POST", "/runs/ask-1/resume", {"action": "approve"})
    assert (status, body) == (
        202,
        {"runId": "ask-1", "status": "running", "nodeId": "manager_approval"},
    )
    status, body = stack.call_api("POST", "/runs/ask-1/resume", {"action": "approve"})
    assert status == 409  # already resumed


def test_redrive_only_a_failed_run_and_it_runs_its_failed_node_again(stack: Stack) -> None:
    run_id = stack.start("flaky")
    stack.drain()
    assert stack.get(run_id)["status"] == "failed"
    status, body = stack.call_api("POST", f"/runs/{run_id}/redrive")
    assert (status, body) == (202, {"runId": run_id, "status": "running"})
    assert stack.get(run_id)["status"] == "running"
    stack.drain()  # boom still fails: the run fails again, with its error
    view = stack.get(run_id)
    assert view["status"] == "failed" and "boom" in view["error"]
    other = stack.start("order")
    status, body = stack.call_api("POST", f"/runs/{other}/redrive")
    assert status == 409 and "only a failed run" in body["message"]
    assert stack.call_api("POST", "/runs/nope/redrive")[0] == 404


def test_cancel_twice_is_409(stack: Stack) -> None:
    run_id = stack.start()
    assert stack.call_api("POST", f"/runs/{run_id}/cancel") == (
        202,
        {"runId": run_id, "status": "cancelled"},
    )
    status, body = stack.call_api("POST", f"/runs/{run_id}/cancel")
    assert status == 409
    assert body == {
        "message": f"run {run_id!r} is cancelled; cannot cancel (it has finished)",
        "status": "cancelled",
    }
    assert stack.get(run_id)["status"] == "cancelled"


def test_failed_run_shows_its_error(stack: Stack) -> None:
    run_id = stack.start("flaky")
    stack.drain()
    run = stack.get(run_id)
    assert run["status"] == "failed"
    assert "boom" in run["error"] and "card declined" in run["error"]


def test_node_results_page_through_the_api_and_a_bad_token_is_400(stack: Stack) -> None:
    run_id = stack.start("order")
    stack.drain()
    view = stack.get(run_id)
    assert view["status"] == "completed"
    assert view["summary"]["nodesPage"] == f"/runs/{run_id}/nodes"
    status, first = stack.call_api("GET", f"/runs/{run_id}/nodes?limit=2")
    assert status == 200, first
    assert len(first["items"]) == 2 and first["nextToken"]
    instances = [i["instance"] for i in first["items"]]
    token = first["nextToken"]
    while token:
        status, page = stack.call_api("GET", f"/runs/{run_id}/nodes?limit=2&nextToken={token}")
        assert status == 200
        instances += [i["instance"] for i in page["items"]]
        token = page.get("nextToken")
    assert set(instances) == set(view["nodes"]) and len(instances) == len(set(instances))
    assert all("output" in i for i in first["items"] if i["status"] == "completed")
    status, body = stack.call_api("GET", f"/runs/{run_id}/nodes?nextToken=nonsense")
    assert status == 400 and "nextToken" in body["message"]
    status, body = stack.call_api("GET", f"/runs/{run_id}/nodes?limit=0")
    assert status == 400 and "limit" in body["message"]


def test_a_webhook_is_called_with_its_token_and_nothing_else(stack: Stack) -> None:
    run_id = stack.start("hooked")
    stack.drain()
    view = stack.get(run_id)
    endpoint = view["awaitingOutputs"]["payment"]
    assert endpoint["url"].endswith(f"/runs/{run_id}/webhooks/payment") and endpoint["token"]
    path = f"/runs/{run_id}/webhooks/payment"
    status, body = stack.call_api("POST", path, {"paid": 10}, headers={"X-Flowcraft-Token": "no"})
    assert status == 403 and "wrong token" in body["message"]
    assert stack.call_api("POST", path, {"paid": 10})[0] == 403  # no token at all
    status, body = stack.call_api(
        "POST", f"/runs/{run_id}/webhooks/submit?token={endpoint['token']}", {"paid": 10}
    )
    assert status == 404 and "no webhook waiting at node 'submit'" in body["message"]
    assert stack.queue_depth() == 0  # nothing was written or sent
    status, body = stack.call_api(
        "POST", path, {"paid": 10}, headers={"X-Flowcraft-Token": endpoint["token"]}
    )
    assert (status, body) == (202, {"runId": run_id, "status": "running", "nodeId": "payment"})
    stack.drain()
    view = stack.get(run_id)
    assert view["status"] == "completed"
    assert view["outputs"]["payment"] == {"paid": 10}
    assert (
        stack.call_api(
            "POST", path, {"paid": 10}, headers={"X-Flowcraft-Token": endpoint["token"]}
        )[0]
        == 404
    )


def test_openapi_document_describes_the_routes(stack: Stack) -> None:
    status, document = stack.call_api("GET", "/openapi.json")
    assert status == 200
    assert document["openapi"].startswith("3.1")
    operations = {
        f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item
    }
    # Every route but the document's own, and nothing else.
    assert operations == {str(route) for route in ROUTES} - {"GET /openapi.json"}
    start = document["paths"]["/runs"]["post"]
    assert set(start["responses"]) == {"202", "400", "409", "413"}
    schemas = document["components"]["schemas"]
    assert set(schemas["StartRunRequest"]["properties"]) == {"blueprintId", "context", "runId"}
    assert schemas["StartRunRequest"]["required"] == ["blueprintId"]
    assert set(schemas) >= {
        "RunList",
        "RunSummaryView",
        "StartRunRequest",
        "ResumeRunRequest",
        "RunAccepted",
        "ResumeAccepted",
        "RunView",
        "ErrorBody",
        "FieldProblem",
        "NodePage",
        "NodeResultView",
    }
    assert (
        "HTTPValidationError" not in schemas
    )  # no HTTPValidationError: invalid requests answer 400 with ErrorBody, not 422
    text = json.dumps(document)
    assert "422" not in text
    validator: Any = pytest.importorskip("openapi_spec_validator")
    validator.validate(document)
