"""A small, safe expression language for edge conditions and transforms.

Why this exists: blueprints are data. A blueprint may come from a file, an API call or a user
in a UI, and its edge ``condition`` / ``transform`` strings run inside the engine with access
to workflow context. Handing those strings to ``eval``/``exec`` (or to Python's ``ast`` plus a
"restricted" evaluator) invites sandbox escapes such as ``().__class__.__bases__``. Instead
this module has its own tokenizer, a Pratt parser into tiny node objects and a compiler that
turns the tree into plain Python closures. Nothing here ever calls ``eval``, ``exec``,
``compile`` or ``getattr`` on user data; the only values an expression can reach are the
ones in the scope mapping, walked as plain JSON-like data (dicts and lists).

flowcraft blueprints were written for a JavaScript engine, Python users write Python, so both
spellings are accepted natively: ``and or not`` / ``&& || !``, ``a if c else b`` / ``c ? a : b``,
``True/None`` / ``true/null/undefined``. The semantics are Python's where the two differ
(``==`` never coerces, ``%`` floors), except that a missing key or index yields ``None`` (like
JS ``undefined``) instead of raising, and truthiness follows :func:`is_truthy`.

Grammar, loosest binding first::

    expr     := or_expr ("?" expr ":" expr | "if" or_expr "else" expr)?
    or_expr  := and_expr (("||" | "or" | "??") and_expr)*
    and_expr := not_expr (("&&" | "and") not_expr)*
    not_expr := "not" not_expr | compare
    compare  := sum (("==" | "!=" | "===" | "!==" | "<" | "<=" | ">" | ">="
                      | "in" | "not in" | "is" | "is not") sum)*      # chains like Python
    sum      := term (("+" | "-") term)*
    term     := unary (("*" | "/" | "//" | "%") unary)*
    unary    := ("-" | "+" | "!") unary | power
    power    := postfix ("**" unary)?
    postfix  := atom ("." NAME | "?." NAME | "[" expr "]" | "?.[" expr "]")*
              | FUNCTION "(" [expr ("," expr)*] ")"
    atom     := NUMBER | STRING | NAME | true | false | null | undefined | True | False | None
              | "(" expr ")" | "[" [expr ("," expr)* [","]] "]"
              | "{" [STRING ":" expr ("," STRING ":" expr)* [","]] "}"

Every failure, at compile time or at run time, is an :class:`ExpressionError` whose message
says what is wrong and at which column of which expression.
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
