"""Static analysis of blueprints: shape (starts, terminals, cycles), lint, and Mermaid diagrams.

Everything here is read-only and runs before a workflow does: the point is to tell a user what is
wrong with a graph *before* a run stalls on it in production. All graph walks are iterative and
linear in nodes + edges, so a 10,000-node blueprint is analysed in milliseconds.
"""

from __future__ import annotations

from ._lint import (
    BLOCKING_CODES,
    InvalidBlueprint,
    LintIssue,
    LintResult,
    check_runnable,
    lint_blueprint,
)
from ._mermaid import diagram_statuses, generate_mermaid
from ._shape import BlueprintAnalysis, analyze_blueprint
from ._types import BlueprintInput, Severity

__all__ = [
    "BLOCKING_CODES",
    "BlueprintAnalysis",
    "BlueprintInput",
    "InvalidBlueprint",
    "LintIssue",
    "LintResult",
    "Severity",
    "analyze_blueprint",
    "check_runnable",
    "diagram_statuses",
    "generate_mermaid",
    "lint_blueprint",
]
