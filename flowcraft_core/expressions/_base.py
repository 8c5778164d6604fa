"""Limits, the expression error, and how errors point into the source."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import FlowcraftError

#: Longest accepted expression source, in characters.
MAX_SOURCE_LENGTH = 2000


#: Most syntax-tree nodes one expression may have.
MAX_NODES = 500


#: Deepest nesting of parentheses, brackets, prefix operators and ternaries.
MAX_DEPTH = 50


#: Largest exponent accepted by ``**``.
MAX_EXPONENT = 100


#: Integer results beyond +/- this are refused.
MAX_INT = 10**100


#: Largest string or list that ``*`` repetition may build (characters or elements).
MAX_SEQUENCE = 100_000


_Scope = Mapping[str, Any]


#: What compiling an expression makes: a closure from the scope to the value.
_Evaluator = Callable[[_Scope], Any]


class ExpressionError(FlowcraftError, ValueError):
    """An expression is invalid or failed to evaluate; the message names the problem and where."""

    def __init__(
        self, message: str, *, source: str | None = None, column: int | None = None
    ) -> None:
        super().__init__(message)
        self.source = source
        self.column = column


class _OpError(Exception):
    """Raised by runtime helpers; the closure that called them adds the position."""


def _show(source: str, pos: int = 0) -> str:
    """The source quoted for a message, cut to a window around ``pos`` when it is long."""
    if len(source) <= 120:
        return json.dumps(source, ensure_ascii=False)
    start = max(0, min(pos - 50, len(source) - 100))
    text = source[start : start + 100]
    prefix = "..." if start > 0 else ""
    suffix = "..." if start + 100 < len(source) else ""
    return f"{prefix}{json.dumps(text, ensure_ascii=False)}{suffix}"


def _error(message: str, source: str, pos: int) -> ExpressionError:
    return ExpressionError(
        f"{message} at column {pos + 1} in {_show(source, pos)}", source=source, column=pos + 1
    )
