"""What the analysis modules share: the input they accept and issue severities."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeAlias

from ..blueprint import (
    WorkflowBlueprint,
)

Severity = Literal["error", "warning"]

BlueprintInput: TypeAlias = WorkflowBlueprint | Mapping[str, Any] | str | bytes
