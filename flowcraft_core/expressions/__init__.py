"""A small, safe expression language for edge conditions and transforms.

Its own lexer, Pratt parser and closure compiler (never ``eval``); Python and JavaScript
spellings both work. Why, and the grammar: docs/design.md, section 8.
"""

from __future__ import annotations

from ._api import CompiledExpression, compile_expression, evaluate_expression
from ._base import (
    MAX_DEPTH,
    MAX_EXPONENT,
    MAX_INT,
    MAX_NODES,
    MAX_SEQUENCE,
    MAX_SOURCE_LENGTH,
    ExpressionError,
)
from ._values import is_truthy

__all__ = [
    "MAX_DEPTH",
    "MAX_EXPONENT",
    "MAX_INT",
    "MAX_NODES",
    "MAX_SEQUENCE",
    "MAX_SOURCE_LENGTH",
    "CompiledExpression",
    "ExpressionError",
    "compile_expression",
    "evaluate_expression",
    "is_truthy",
]
