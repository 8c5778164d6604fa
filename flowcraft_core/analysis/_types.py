"""What the analysis modules share: the input they accept, issue severities, what lint
reports (``LintIssue``, ``LintResult``) and the parsed input its passes share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from ..blueprint import BlueprintError, EdgeDefinition, NodeDefinition, WorkflowBlueprint

Severity = Literal["error", "warning"]

BlueprintInput: TypeAlias = WorkflowBlueprint | Mapping[str, Any] | str | bytes


@dataclass(frozen=True)
class LintIssue:
    """One problem. ``code`` is stable (match on it); ``message`` is for humans and names the
    node or edge at fault."""

    code: str
    severity: Severity
    message: str
    node_id: str | None = None
    edge_index: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """camelCase form for JSON answers (unset locations omitted)."""
        result: dict[str, Any] = {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
        }
        if self.node_id is not None:
            result["nodeId"] = self.node_id
        if self.edge_index is not None:
            result["edgeIndex"] = self.edge_index
        return result


@dataclass(frozen=True)
class LintResult:
    """All issues found; the blueprint is valid when none of them is an error."""

    issues: list[LintIssue] = field(default_factory=list)

    @property
    def is_valid(self) -> bool:
        """True when no issue has severity ``error`` (warnings do not block a run)."""
        return not any(issue.severity == "error" for issue in self.issues)

    @property
    def errors(self) -> list[LintIssue]:
        """The issues that make the blueprint unusable."""
        return [issue for issue in self.issues if issue.severity == "error"]

    @property
    def warnings(self) -> list[LintIssue]:
        """The issues worth a look that do not stop a run."""
        return [issue for issue in self.issues if issue.severity == "warning"]

    @property
    def codes(self) -> list[str]:
        """Issue codes in report order (handy for asserting in tests)."""
        return [issue.code for issue in self.issues]

    def to_dict(self) -> dict[str, Any]:
        """camelCase form for JSON answers."""
        return {"isValid": self.is_valid, "issues": [issue.to_dict() for issue in self.issues]}


@dataclass
class _Parsed:
    """What lint could make of its input: the usable nodes and edges, plus problems found."""

    blueprint_id: str
    #: (id, definition) in blueprint order; the definition is None for a node that failed
    #: validation but has an id, so edges to it still count and no false reference error appears.
    nodes: list[tuple[str, NodeDefinition | None]]
    edges: list[tuple[int, EdgeDefinition]]
    metadata: Mapping[str, Any]
    issues: list[LintIssue]
    load_error: BlueprintError | None = None
    #: True when this lint call loaded the blueprint itself, so the loader already compiled every
    #: expression. A model handed in is re-checked: models are mutable after validation.
    expressions_checked: bool = False
