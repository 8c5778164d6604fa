"""The compiler: a syntax tree to nested closures, checked once, evaluated many times."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from ._base import ExpressionError, _error, _Evaluator, _OpError, _Scope
from ._parser import _name_allowed, _Node
from ._values import (
    _FUNCTIONS,
    _add,
    _contains,
    _eq,
    _floordiv,
    _get,
    _kind,
    _make_order,
    _mod,
    _mul,
    _neg,
    _not_contains,
    _not_eq,
    _not_strict_eq,
    _pos,
    _pow,
    _strict_eq,
    _sub,
    _truediv,
    is_truthy,
)


class _Compiled(NamedTuple):
    """A compiled sub-expression, and its value when it is a constant (for folding)."""

    fn: _Evaluator
    const: bool = False
    value: Any = None
    #: For list literals of constants: the items as a tuple (used by ``in [...]``).
    frozen: tuple[Any, ...] | None = None


def _constant(value: Any) -> _Compiled:
    def constant(scope: _Scope) -> Any:
        return value

    return _Compiled(constant, True, value)


_EMPTY_SCOPE: Mapping[str, Any] = {}


_ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "+": _add,
    "-": _sub,
    "*": _mul,
    "/": _truediv,
    "//": _floordiv,
    "%": _mod,
}


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": _eq,
    "!=": _not_eq,
    "===": _strict_eq,
    "!==": _not_strict_eq,
    "<": _make_order("<", lambda a, b: a < b),
    "<=": _make_order("<=", lambda a, b: a <= b),
    ">": _make_order(">", lambda a, b: a > b),
    ">=": _make_order(">=", lambda a, b: a >= b),
    "in": _contains,
    "not in": _not_contains,
}


def _make_path(root: str, keys: tuple[Any, ...]) -> _Evaluator:
    """``root.k1.k2...`` with constant keys: the hot path of nearly every condition."""
    if not keys:

        def get_root(scope: _Scope) -> Any:
            return scope.get(root)

        return get_root
    if len(keys) == 1:
        (key,) = keys

        def get_one(scope: _Scope) -> Any:
            value = scope.get(root)
            if type(value) is dict:
                return value.get(key)
            return _get(value, key)

        return get_one

    def get_path(scope: _Scope) -> Any:
        value = scope.get(root)
        for key in keys:
            if type(value) is dict:
                value = value.get(key)
            elif value is None:
                return None
            else:
                value = _get(value, key)
        return value

    return get_path


def _make_walk(base: _Evaluator, keys: tuple[Any, ...]) -> _Evaluator:
    def walk(scope: _Scope) -> Any:
        value = base(scope)
        for key in keys:
            if value is None:
                return None
            value = _get(value, key)
        return value

    return walk


class _Compiler:
    """Turns a tree into closures, folding constant sub-expressions as it goes."""

    def __init__(self, source: str) -> None:
        self.source = source

    def where(self, pos: int) -> Callable[[_OpError], ExpressionError]:
        source = self.source

        def located(exc: _OpError) -> ExpressionError:
            return _error(str(exc), source, pos)

        return located

    def compile(self, node: _Node) -> _Compiled:
        return self._DISPATCH[node.kind](self, node)

    def fold_constants(self, fn: _Evaluator, parts: list[_Compiled]) -> _Compiled:
        """Evaluate now when every input is constant; errors become compile-time errors."""
        if all(part.const for part in parts):
            value = fn(_EMPTY_SCOPE)
            if _kind(value) not in ("list", "object"):  # never share a mutable result
                return _constant(value)
        return _Compiled(fn)

    def literal(self, node: _Node) -> _Compiled:
        return _constant(node.value)

    def name(self, node: _Node) -> _Compiled:
        return _Compiled(_make_path(node.value, ()))

    def access(self, node: _Node) -> _Compiled:
        base, *keys = node.children
        root: str | None = base.value if base.kind == "name" else None
        fn: _Evaluator | None = None if root is not None else self.compile(base).fn
        pending: list[Any] = []

        def flush() -> _Evaluator:
            if root is not None:
                return _make_path(root, tuple(pending))
            assert fn is not None
            return _make_walk(fn, tuple(pending)) if pending else fn

        for key_node, pos in zip(keys, node.value, strict=True):
            code = self.compile(key_node)
            key = code.value
            if code.const and type(key) in (str, int):
                if type(key) is str and not _name_allowed(key):
                    raise _error(
                        f"key {key!r} is not allowed (keys may not start with '_' or contain '__')",
                        self.source,
                        key_node.pos,
                    )
                pending.append(key)
                continue
            fn = _index(flush(), code.fn, self.where(pos))
            root, pending = None, []
        return _Compiled(flush())

    def call(self, node: _Node) -> _Compiled:
        impl = _FUNCTIONS[node.value].impl
        parts = [self.compile(arg) for arg in node.children]
        where = self.where(node.pos)
        if len(parts) == 1:
            arg = parts[0].fn

            def call_one(scope: _Scope) -> Any:
                value = arg(scope)
                try:
                    return impl(value)
                except _OpError as exc:
                    raise where(exc) from None

            return self.fold_constants(call_one, parts)
        fns = tuple(part.fn for part in parts)

        def call_many(scope: _Scope) -> Any:
            values = [f(scope) for f in fns]
            try:
                return impl(*values)
            except _OpError as exc:
                raise where(exc) from None

        return self.fold_constants(call_many, parts)

    def list_literal(self, node: _Node) -> _Compiled:
        parts = [self.compile(item) for item in node.children]
        fns = tuple(part.fn for part in parts)

        def make_list(scope: _Scope) -> list[Any]:
            return [f(scope) for f in fns]

        frozen = tuple(part.value for part in parts) if all(p.const for p in parts) else None
        return _Compiled(make_list, frozen=frozen)

    def object_literal(self, node: _Node) -> _Compiled:
        pairs = tuple(
            (key, self.compile(value).fn)
            for key, value in zip(node.value, node.children, strict=True)
        )

        def make_object(scope: _Scope) -> dict[str, Any]:
            return {key: f(scope) for key, f in pairs}

        return _Compiled(make_object)

    def unary(self, node: _Node) -> _Compiled:
        part = self.compile(node.children[0])
        operand = part.fn
        if node.value in ("!", "not"):

            def negate(scope: _Scope) -> bool:
                return not is_truthy(operand(scope))

            return self.fold_constants(negate, [part])
        op = _neg if node.value == "-" else _pos
        where = self.where(node.pos)

        def sign(scope: _Scope) -> Any:
            value = operand(scope)
            try:
                return op(value)
            except _OpError as exc:
                raise where(exc) from None

        return self.fold_constants(sign, [part])

    def power(self, node: _Node) -> _Compiled:
        parts = [self.compile(child) for child in node.children]
        return self.fold_constants(self._binary(_pow, parts[0].fn, parts[1].fn, node.pos), parts)

    def _binary(
        self, op: Callable[[Any, Any], Any], left: _Evaluator, right: _Evaluator, pos: int
    ) -> _Evaluator:
        where = self.where(pos)

        def binary(scope: _Scope) -> Any:
            a = left(scope)
            b = right(scope)
            try:
                return op(a, b)
            except _OpError as exc:
                raise where(exc) from None

        return binary

    def arith(self, node: _Node) -> _Compiled:
        parts = [self.compile(child) for child in node.children]
        if len(parts) == 2:
            name, pos, _ = node.value[0]
            return self.fold_constants(
                self._binary(_ARITH[name], parts[0].fn, parts[1].fn, pos), parts
            )
        first = parts[0].fn
        steps = tuple(
            (_ARITH[name], part.fn, self.where(pos))
            for (name, pos, _), part in zip(node.value, parts[1:], strict=True)
        )

        def arith_chain(scope: _Scope) -> Any:
            value = first(scope)
            for op, f, where in steps:
                b = f(scope)
                try:
                    value = op(value, b)
                except _OpError as exc:
                    raise where(exc) from None
            return value

        return self.fold_constants(arith_chain, parts)

    def logic(self, node: _Node) -> _Compiled:
        parts = [self.compile(child) for child in node.children]
        ops = tuple(name for name, _, _ in node.value)
        if len(parts) == 2:
            left, right = parts[0].fn, parts[1].fn
            if ops[0] == "and":

                def and_(scope: _Scope) -> Any:
                    a = left(scope)
                    return right(scope) if is_truthy(a) else a

                return self.fold_constants(and_, parts)
            if ops[0] == "or":

                def or_(scope: _Scope) -> Any:
                    a = left(scope)
                    return a if is_truthy(a) else right(scope)

                return self.fold_constants(or_, parts)

            def nullish(scope: _Scope) -> Any:
                a = left(scope)
                return a if a is not None else right(scope)

            return self.fold_constants(nullish, parts)
        first = parts[0].fn
        steps = tuple(zip(ops, (part.fn for part in parts[1:]), strict=True))

        def logic_chain(scope: _Scope) -> Any:
            value = first(scope)
            for op, f in steps:
                if op == "and":
                    if is_truthy(value):
                        value = f(scope)
                elif op == "or":
                    if not is_truthy(value):
                        value = f(scope)
                elif value is None:
                    value = f(scope)
            return value

        return self.fold_constants(logic_chain, parts)

    def compare(self, node: _Node) -> _Compiled:
        parts = [self.compile(child) for child in node.children]
        for i, (name, _, _) in enumerate(node.value, start=1):
            if name in ("in", "not in") and parts[i].frozen is not None:
                parts[i] = _constant(parts[i].frozen)
        if len(parts) == 2:
            name, pos, _ = node.value[0]
            op = _COMPARE[name]
            left = parts[0].fn
            where = self.where(pos)
            if parts[1].const:
                constant = parts[1].value

                def compare_constant(scope: _Scope) -> Any:
                    a = left(scope)
                    try:
                        return op(a, constant)
                    except _OpError as exc:
                        raise where(exc) from None

                return self.fold_constants(compare_constant, parts)
            return self.fold_constants(self._binary(op, left, parts[1].fn, pos), parts)
        first = parts[0].fn
        steps = tuple(
            (_COMPARE[name], part.fn, self.where(pos))
            for (name, pos, _), part in zip(node.value, parts[1:], strict=True)
        )

        def compare_chain(scope: _Scope) -> bool:
            a = first(scope)
            for op, f, where in steps:
                b = f(scope)
                try:
                    if not op(a, b):
                        return False
                except _OpError as exc:
                    raise where(exc) from None
                a = b
            return True

        return self.fold_constants(compare_chain, parts)

    def cond(self, node: _Node) -> _Compiled:
        parts = [self.compile(child) for child in node.children]
        test, then, otherwise = (part.fn for part in parts)

        def conditional(scope: _Scope) -> Any:
            return then(scope) if is_truthy(test(scope)) else otherwise(scope)

        return self.fold_constants(conditional, parts)

    _DISPATCH: dict[str, Callable[[_Compiler, _Node], _Compiled]] = {
        "literal": literal,
        "name": name,
        "access": access,
        "call": call,
        "list": list_literal,
        "object": object_literal,
        "unary": unary,
        "power": power,
        "arith": arith,
        "logic": logic,
        "compare": compare,
        "cond": cond,
    }


def _index(
    base: _Evaluator, key_fn: _Evaluator, where: Callable[[_OpError], ExpressionError]
) -> _Evaluator:
    """``base[key]`` with a key computed at run time."""

    def index(scope: _Scope) -> Any:
        value = base(scope)
        key = key_fn(scope)
        try:
            return _get(value, key)
        except _OpError as exc:
            raise where(exc) from None

    return index
