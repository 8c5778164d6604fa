"""Errors of the distributed driver and its client, each naming what is wrong."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..analysis import InvalidBlueprint as InvalidBlueprint  # raised by both drivers
from ..errors import FlowcraftError

if TYPE_CHECKING:
    from .records import NodeRecord


class RunNotFound(FlowcraftError, LookupError):
    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id!r} does not exist")
        self.run_id = run_id


class UnknownBlueprint(FlowcraftError, LookupError):
    def __init__(self, blueprint_id: str, known: list[str] | None = None) -> None:
        hint = f"; known blueprints: {', '.join(sorted(known))}" if known else ""
        super().__init__(f"unknown blueprint {blueprint_id!r}{hint}")
        self.blueprint_id = blueprint_id


class RunConflict(FlowcraftError, RuntimeError):
    """The run is not in a state that allows the request (e.g. resume a completed run)."""

    def __init__(self, run_id: str, status: str, wanted: str) -> None:
        super().__init__(f"run {run_id!r} is {status}; cannot {wanted}")
        self.run_id = run_id
        self.status = status


class CommitRejected(Exception):
    """A conditional write lost: the node settled already (``current`` is its record), or the
    run is closed."""

    def __init__(self, reason: str, current: NodeRecord | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.current = current


class StateTooLarge(FlowcraftError, Exception):
    """The run record would pass DynamoDB's 400 KB item limit."""


class DeferJob(Exception):
    """This message must come back later (a queue without per-message delays, such as FIFO):
    the caller makes it invisible for ``seconds`` instead of deleting it."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"job deferred for {seconds:.0f} s")
        self.seconds = seconds


class PoisonJob(FlowcraftError, ValueError):
    """A job that can never succeed and names no run to fail: it belongs in the DLQ."""


class InvalidResume(FlowcraftError, ValueError):
    """A resume the waiting node cannot route (an action none of its edges takes); nothing
    was written. The message names the actions that would route."""

    def __init__(self, run_id: str, node_id: str, action: str | None, valid: list[str]) -> None:
        wanted = "no action" if action is None else f"action {action!r}"
        choices = ", ".join(repr(a) for a in valid) or "none"
        super().__init__(
            f"run {run_id!r}: node {node_id!r} has no edge for {wanted}; valid actions: {choices}"
        )
        self.valid = valid


class EdgeFailed(FlowcraftError, ValueError):
    """An edge's condition could not be evaluated on a node's result."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


class WebhookRefused(FlowcraftError, PermissionError):
    """A webhook call whose token is not the node's; nothing was written."""

    def __init__(self, run_id: str, node_id: str) -> None:
        super().__init__(f"run {run_id!r}: wrong token for the webhook of node {node_id!r}")


class UnknownWebhook(FlowcraftError, LookupError):
    """No webhook of that node is waiting in that run."""

    def __init__(self, run_id: str, node_id: str) -> None:
        super().__init__(f"run {run_id!r} has no webhook waiting at node {node_id!r}")
