"""The example workflows run in memory to the results the README and the demo promise.

The same blueprints and registry are what the Lambda handlers load (``FLOWCRAFT_APP=workflows``),
so these tests are the fast check that an example still means what it says; the distributed
path is covered end to end by ``test_local_demo.py``.
"""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import pytest

import workflows
from flowcraft_core import FlowRuntime, WorkflowResult, generate_mermaid, lint_blueprint
from flowcraft_core.app import merge_registries
from flowcraft_core.distributed.storable import check_storable
from flowcraft_core.testing import FakeClock
from workflows import approval, blueprints, order, registry, retry_loop, sample_contexts


def run(
    blueprint_id: str, context: dict[str, Any] | None = None
) -> tuple[WorkflowResult, FakeClock]:
    clock = FakeClock()
    runtime = FlowRuntime(registry, blueprints=blueprints, clock=clock)
    initial = sample_contexts[blueprint_id] if context is None else context
    return asyncio.run(runtime.run(blueprint_id, initial)), clock


def attempts_of(result: WorkflowResult, key: str) -> int:
    return next(t.attempts for t in result.timeline if t.key == key)


def completed_passes(result: WorkflowResult, node_id: str) -> int:
    return sum(
        1 for t in result.timeline if t.key.partition("#")[0] == node_id and t.status == "completed"
    )


# ---------------------------------------------------------------------------- the package


def test_app_module_exposes_what_the_handlers_load() -> None:
    # ">=": a workflow a user adds to workflows/ is picked up and must not break this test.
    assert set(blueprints) >= {
        "order",
        "approval",
        "thumbnails",
        "reminder",
        "onboarding",
        "retry_loop",
        "welcome_kit",
    }
    assert workflows.dependencies == {}
    assert all(callable(implementation) for implementation in registry.values())
    assert set(sample_contexts) >= {module.BLUEPRINT["id"] for module in workflows.EXAMPLES}
    assert "welcome_kit" not in sample_contexts


@pytest.mark.parametrize("blueprint_id", sorted(blueprints))
def test_blueprint_lints_clean_and_draws(blueprint_id: str) -> None:
    lint = lint_blueprint(blueprints[blueprint_id], registry)
    assert lint.issues == [], [issue.to_dict() for issue in lint.issues]
    assert generate_mermaid(blueprints[blueprint_id]).startswith("flowchart TD")


def test_registry_refuses_a_key_defined_twice() -> None:
    one = SimpleNamespace(__name__="one", REGISTRY={"step": lambda ctx: None})
    two = SimpleNamespace(__name__="two", REGISTRY={"step": lambda ctx: None})
    with pytest.raises(ValueError, match="'step' is defined twice"):
        merge_registries((one, two))


@pytest.mark.parametrize("blueprint_id", sorted(sample_contexts))
def test_results_are_json_so_dynamodb_can_store_them(blueprint_id: str) -> None:
    result, _ = run(blueprint_id)
    json.dumps({"context": result.context, "outputs": result.outputs})
    # The rules the distributed driver's store holds values to (digits, exponents, text).
    check_storable({"context": result.context, "outputs": result.outputs}, blueprint_id)


# ---------------------------------------------------------------------------- order


def test_order_retries_validate_fans_out_and_skips_standard_shipping() -> None:
    result, clock = run("order")
    assert result.status == "completed", result.errors
    assert attempts_of(result, "validate") == 2
    assert clock.sleeps == [0.2]  # retryDelay 200 ms before the second attempt
    assert result.node_statuses == {
        "validate": "completed",
        "reserve_stock": "completed",
        "charge_payment": "completed",
        "fraud_check": "completed",
        "confirm": "completed",
        "vip_gift": "completed",
        "ship": "skipped",
        "notify": "completed",
    }
    assert result.outputs["validate"]["total"] == 129.5
    assert result.outputs["vip_gift"]["gift"] == "tote bag"
    assert result.outputs["notify"]["via"] == "vip_gift"
    assert result.context["total"] == 129.5


def test_small_order_ships_standard_and_skips_the_gift() -> None:
    context = {**order.SAMPLE_CONTEXT, "items": [{"sku": "PEN", "qty": 3, "price": 2.5}]}
    result, _ = run("order", context)
    assert result.status == "completed", result.errors
    assert result.node_statuses["vip_gift"] == "skipped"
    assert result.outputs["ship"]["carrier"] == "standard"
    assert result.outputs["notify"]["via"] == "ship"


def test_order_flagged_by_fraud_screening_fails_at_confirm() -> None:
    context = {**order.SAMPLE_CONTEXT, "items": [{"sku": "GOLD", "qty": 1, "price": 50_000}]}
    result, _ = run("order", context)
    assert result.status == "failed"
    assert result.errors[0].node_id == "confirm"
    assert "fraud screening" in result.errors[0].message
    assert "notify" not in result.outputs


# ---------------------------------------------------------------------------- approval


@pytest.mark.parametrize(
    ("action", "ran", "skipped"),
    [
        ("approve", "provision_access", "notify_rejection"),
        ("reject", "notify_rejection", "provision_access"),
    ],
)
def test_approval_waits_then_follows_the_chosen_action(action: str, ran: str, skipped: str) -> None:
    runtime = FlowRuntime(registry, blueprints=blueprints)
    parked = asyncio.run(runtime.run("approval", approval.SAMPLE_CONTEXT))
    assert parked.status == "awaiting"
    assert parked.awaiting == ["manager_approval"]
    assert parked.outputs["submit"]["requestId"] == "REQ-42"

    decision = {**approval.SAMPLE_APPROVAL, "note": "not this quarter"}
    result = asyncio.run(
        runtime.resume(
            "approval", parked, node_id="manager_approval", action=action, output=decision
        )
    )
    assert result.status == "completed", result.errors
    assert result.node_statuses[ran] == "completed"
    assert result.node_statuses[skipped] == "skipped"
    if action == "approve":
        assert result.outputs[ran]["approvedBy"] == "lin@example.com"
        assert result.context["approvedBy"] == "lin@example.com"
    else:
        assert result.outputs[ran]["message"] == "Access refused: not this quarter"


# ---------------------------------------------------------------------------- thumbnails


def test_thumbnails_map_keeps_item_order_and_fits_the_box() -> None:
    result, _ = run("thumbnails")
    assert result.status == "completed", result.errors
    images = sample_contexts["thumbnails"]["images"]
    thumbs = result.outputs["resize_all"]
    assert [t["source"] for t in thumbs] == [image["key"] for image in images]
    assert all(max(t["width"], t["height"]) <= 256 for t in thumbs)
    assert thumbs[0] == {
        "source": "uploads/beach.jpg",
        "thumbnail": "thumbs/beach-256.jpg",
        "width": 256,
        "height": 192,
    }
    assert result.outputs["summarize"]["count"] == len(images)


# ---------------------------------------------------------------------------- reminder


def test_reminder_sleeps_two_seconds_on_the_clock_then_sends() -> None:
    result, clock = run("reminder")
    assert result.status == "completed", result.errors
    assert clock.sleeps == [2.0]
    assert result.outputs["wait_a_bit"] == result.outputs["schedule"]  # sleep passes through
    assert result.outputs["send_reminder"] == {
        "sent": True,
        "to": "ada@example.com",
        "text": "Reminder: renew your TLS certificate",
    }


# ---------------------------------------------------------------------------- onboarding


def test_onboarding_runs_welcome_kit_as_a_subflow_and_maps_its_outputs() -> None:
    result, _ = run("onboarding")
    assert result.status == "completed", result.errors
    assert result.context["username"] == "katherine.johnson"
    assert result.context["kitId"] == "KIT-katherine.johnson"
    # Only the mapped keys come back: the child's own "name"/"email" stay in the child.
    assert "name" not in result.context
    assert result.outputs["done"] == {
        "username": "katherine.johnson",
        "kitId": "KIT-katherine.johnson",
        "team": "navigation",
    }


def test_welcome_kit_also_runs_on_its_own() -> None:
    result, _ = run("welcome_kit", {"name": "Ada Lovelace", "email": "ada@example.com"})
    assert result.status == "completed", result.errors
    assert result.outputs["send_kit"] == {"kitId": "KIT-ada.lovelace", "sentTo": "ada@example.com"}


# ---------------------------------------------------------------------------- retry_loop


def test_retry_loop_polls_until_ready() -> None:
    result, _ = run("retry_loop")
    assert result.status == "completed", result.errors
    assert completed_passes(result, "poll_status") == retry_loop.READY_AFTER_POLLS == 3
    assert result.outputs["report"] == {
        "jobId": "export-monthly-usage-2024-05",
        "status": "ready",
        "polls": 3,
    }


def test_retry_loop_gives_up_after_max_iterations(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry_loop, "READY_AFTER_POLLS", 99)
    result, _ = run("retry_loop")
    assert result.status == "completed", result.errors
    assert completed_passes(result, "poll_status") == 5
    assert result.outputs["report"]["status"] == "gave up"
