"""What each example should do: the bundled examples and the app's own, and the checks."""

from __future__ import annotations

from dataclasses import dataclass, field

from flowcraft_core.scheduler import split_key
from flowcraft_core.status import AWAITING, COMPLETED
from local.demo.base import Json
from workflows import blueprints, sample_contexts


@dataclass(frozen=True)
class Example:
    """One example run and what "ended as expected" means for it.

    The expectations are deliberately about semantics the example exists to show (a retry
    happened, the right branch was skipped, the loop ran three passes), not about every value.
    """

    blueprint_id: str
    context: Json
    #: Sent as ``POST /runs/{id}/resume`` once the run is ``awaiting``.
    resume: Json | None = None
    #: The final status expected; ``None`` (a workflow the demo knows nothing about): it ends
    #: ``completed``, or ``awaiting`` someone's resume.
    status: str | None = "completed"
    #: node id -> status of its latest instance, as ``GET /runs/{id}`` reports it.
    nodes: dict[str, str] = field(default_factory=dict)
    #: node id -> attempts its (first) instance needed.
    attempts: dict[str, int] = field(default_factory=dict)
    #: node id -> number of completed instances (loop passes).
    passes: dict[str, int] = field(default_factory=dict)
    #: node id -> key/value pairs its output must contain.
    outputs: dict[str, Json] = field(default_factory=dict)


def _bundled_examples() -> list[Example]:
    """The bundled examples with what each must show (filtered by :func:`_examples`)."""
    try:
        from workflows.approval import SAMPLE_APPROVAL
    except ImportError:  # the user removed the approval example
        SAMPLE_APPROVAL = {"approver": None}

    def context(blueprint_id: str) -> Json:
        return sample_contexts.get(blueprint_id, {})

    return [
        Example(
            "order",
            context("order"),
            nodes={"vip_gift": "completed", "ship": "skipped", "notify": "completed"},
            attempts={"validate": 2},
            outputs={"notify": {"via": "vip_gift"}},
        ),
        Example(
            "approval",
            context("approval"),
            resume={"action": "approve", "output": SAMPLE_APPROVAL},
            nodes={"provision_access": "completed", "notify_rejection": "skipped"},
            outputs={"provision_access": {"approvedBy": SAMPLE_APPROVAL["approver"]}},
        ),
        Example(
            "thumbnails",
            context("thumbnails"),
            nodes={"resize_all": "completed", "summarize": "completed"},
            outputs={"summarize": {"count": len(context("thumbnails").get("images", []))}},
        ),
        Example(
            "reminder",
            context("reminder"),
            nodes={"wait_a_bit": "completed", "send_reminder": "completed"},
            outputs={"send_reminder": {"sent": True}},
        ),
        Example(
            "onboarding",
            context("onboarding"),
            nodes={"welcome": "completed", "done": "completed"},
            outputs={"done": {"username": "katherine.johnson", "kitId": "KIT-katherine.johnson"}},
        ),
        Example(
            "retry_loop",
            context("retry_loop"),
            passes={"poll_status": 3},
            outputs={"report": {"status": "ready", "polls": 3}},
        ),
    ]


def _examples() -> tuple[Example, ...]:
    """The bundled examples, then every other workflow of the app with a sample context.

    A workflow a user adds to ``workflows/`` runs too, expected only to finish; one whose
    bundled example was removed is left out instead of breaking the demo.
    """
    known = [e for e in _bundled_examples() if e.blueprint_id in blueprints]
    named = {e.blueprint_id for e in known}
    extra = [
        Example(blueprint_id, context, status=None)
        for blueprint_id, context in sample_contexts.items()
        if blueprint_id not in named and blueprint_id in blueprints
    ]
    return (*known, *extra)


EXAMPLES: tuple[Example, ...] = _examples()


def check(example: Example, run: Json | None) -> list[str]:
    """How the final ``GET /runs/{id}`` body differs from what the example expects."""
    if run is None:
        return ["the run was never readable"]
    problems: list[str] = []
    expected = (example.status,) if example.status else (COMPLETED.value, AWAITING.value)
    if run.get("status") not in expected:
        detail = f" ({run['error']})" if run.get("error") else ""
        allowed = " or ".join(repr(s) for s in expected)
        problems.append(f"status is {run.get('status')!r}, expected {allowed}{detail}")
    nodes: dict[str, str] = run.get("nodes") or {}
    for node_id, status in example.nodes.items():
        if nodes.get(node_id) != status:
            problems.append(f"node {node_id!r} is {nodes.get(node_id)!r}, expected {status!r}")
    timeline: list[Json] = run.get("timeline") or []
    for node_id, attempts in example.attempts.items():
        entry = next((t for t in timeline if t["node"] == node_id), None)
        if entry is None or entry.get("attempts") != attempts:
            found = None if entry is None else entry.get("attempts")
            problems.append(f"node {node_id!r} took {found} attempt(s), expected {attempts}")
    for node_id, count in example.passes.items():
        done = sum(
            1 for t in timeline if split_key(t["node"])[0] == node_id and t["status"] == COMPLETED
        )
        if done != count:
            problems.append(f"node {node_id!r} completed {done} time(s), expected {count}")
    outputs: Json = run.get("outputs") or {}
    for node_id, wanted in example.outputs.items():
        output = outputs.get(node_id)
        for key, value in wanted.items():
            got = output.get(key) if isinstance(output, dict) else None
            if got != value:
                problems.append(f"output of {node_id!r}: {key}={got!r}, expected {value!r}")
    return problems
