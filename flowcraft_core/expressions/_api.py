"""The public API: compile once (cached), evaluate against a scope."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from ._base import MAX_SOURCE_LENGTH, ExpressionError, _Evaluator, _OpError, _show
from ._compiler import _Compiler
from ._parser import _Parser


class CompiledExpression:
    """A parsed, checked expression; ``evaluate`` is cheap and thread-safe."""

    __slots__ = ("_fn", "source")

    source: str

    def __init__(self, source: str, fn: _Evaluator) -> None:
        self.source = source
        self._fn = fn

    def evaluate(self, scope: Mapping[str, Any]) -> Any:
        """Evaluate against ``scope`` (root name -> JSON-like value); unknown roots are None."""
        try:
            return self._fn(scope)
        except ExpressionError:
            raise
        except _OpError as exc:  # pragma: no cover - helpers' errors are located by closures
            raise ExpressionError(f"{exc} in {_show(self.source)}", source=self.source) from None
        except RecursionError:
            raise ExpressionError(
                f"data is nested too deeply to evaluate {_show(self.source)}", source=self.source
            ) from None
        except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
            raise ExpressionError(
                f"cannot evaluate {_show(self.source)}: {exc}", source=self.source
            ) from exc

    def __repr__(self) -> str:
        return f"CompiledExpression({self.source!r})"


@functools.lru_cache(maxsize=4096)
def _compile_cached(source: str) -> CompiledExpression:
    try:
        tree = _Parser(source).parse()
        code = _Compiler(source).compile(tree)
    except RecursionError:  # pragma: no cover - the depth and node limits prevent this
        raise ExpressionError(f"expression is nested too deeply: {_show(source)}") from None
    return CompiledExpression(source, code.fn)


def compile_expression(source: str) -> CompiledExpression:
    """Parse and check ``source``; results are cached (LRU, 4096 entries) by source text."""
    if not isinstance(source, str):
        raise ExpressionError(f"an expression must be a string, got {type(source).__name__}")
    if len(source) > MAX_SOURCE_LENGTH:
        raise ExpressionError(
            f"expression is too long ({len(source)} characters; the limit is "
            f"{MAX_SOURCE_LENGTH}): {_show(source)}"
        )
    return _compile_cached(source)


def evaluate_expression(source: str, scope: Mapping[str, Any]) -> Any:
    """Compile (cached) and evaluate in one call."""
    return compile_expression(source).evaluate(scope)
