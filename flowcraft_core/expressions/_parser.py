"""The parser: tokens to a syntax tree (Pratt parsing, Python and JavaScript spellings)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from ._base import MAX_DEPTH, MAX_NODES, ExpressionError, _error
from ._lexer import _Token, _tokenize
from ._values import _FUNCTIONS


class _Node(NamedTuple):
    """A syntax-tree node.

    kind: literal(value) | name(value) | access(children=(base, *keys), value=step positions)
    | call(value=function, children=args) | list | object(value=keys) | unary(value=op)
    | power | arith / logic / compare(value=((op, pos, text), ...), children=operands)
    | cond(children=(test, then, otherwise)).
    """

    kind: str
    pos: int
    value: Any = None
    children: tuple[_Node, ...] = ()


_CONSTANTS: dict[str, Any] = {
    "true": True,
    "false": False,
    "null": None,
    "undefined": None,
    "True": True,
    "False": False,
    "None": None,
}


#: Words that would only mislead if treated as names (Python or JavaScript statements).
_RESERVED = frozenset(
    {
        *("lambda", "def", "class", "import", "from", "return", "yield", "await", "async"),
        *("del", "global", "nonlocal", "with", "as", "assert", "raise", "try", "except"),
        *("finally", "pass", "break", "continue", "for", "while", "elif"),
        *("function", "new", "typeof", "instanceof", "delete", "void", "this", "var", "let"),
        "const",
    }
)


_WORD_OPERATORS = frozenset({"and", "or", "not", "in", "is", "if", "else"})


_TERNARY_BP = 1


_OR_BP = 2


_AND_BP = 3


_NOT_BP = 4


_COMPARE_BP = 5


_SUM_BP = 6


_TERM_BP = 7


_PREFIX_BP = 8


_POWER_BP = 9


_POSTFIX_BP = 10


_OR_OPS = {"||": "or", "or": "or", "??": "??"}


_AND_OPS = {"&&": "and", "and": "and"}


_COMPARE_OPS = {
    "==": "==",
    "!=": "!=",
    "===": "===",
    "!==": "!==",
    "<": "<",
    "<=": "<=",
    ">": ">",
    ">=": ">=",
    "in": "in",
    "not": "not in",
    "is": "===",
}


_SUM_OPS = {"+": "+", "-": "-"}


_TERM_OPS = {"*": "*", "/": "/", "//": "//", "%": "%"}


_INFIX_BP: dict[str, int] = {
    "?": _TERNARY_BP,
    "if": _TERNARY_BP,
    **dict.fromkeys(_OR_OPS, _OR_BP),
    **dict.fromkeys(_AND_OPS, _AND_BP),
    **dict.fromkeys(_COMPARE_OPS, _COMPARE_BP),
    **dict.fromkeys(_SUM_OPS, _SUM_BP),
    **dict.fromkeys(_TERM_OPS, _TERM_BP),
    "**": _POWER_BP,
    ".": _POSTFIX_BP,
    "?.": _POSTFIX_BP,
    "[": _POSTFIX_BP,
    "(": _POSTFIX_BP,
}


#: The one underscore name allowed: flowcraft's ``_outputs`` (node id -> output).
_ALLOWED_UNDERSCORE_NAMES = frozenset({"_outputs"})


def _name_allowed(name: str) -> bool:
    if name in _ALLOWED_UNDERSCORE_NAMES:
        return True
    return not name.startswith("_") and "__" not in name


class _Parser:
    """Pratt parser. Same-precedence runs become one n-ary node, so trees stay shallow."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = _tokenize(source)
        self.index = 0
        self.depth = -1
        self.nodes = 0

    def parse(self) -> _Node:
        if self.tokens[0].kind == "end":
            raise _error("empty expression", self.source, 0)
        tree = self.expression(0)
        token = self.peek()
        if token.kind != "end":
            raise self.unexpected(token)
        return tree

    # -- helpers

    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.index + ahead, len(self.tokens) - 1)]

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        if token.kind != "end":
            self.index += 1
        return token

    def is_op(self, token: _Token, text: str) -> bool:
        return token.kind == "op" and token.text == text

    def expect(self, text: str) -> _Token:
        token = self.peek()
        if not self.is_op(token, text) and not (token.kind == "name" and token.text == text):
            found = "end of expression" if token.kind == "end" else f"{token.text!r}"
            raise _error(f"expected {text!r} but found {found}", self.source, token.pos)
        return self.advance()

    def unexpected(self, token: _Token) -> ExpressionError:
        if token.kind == "end":
            return _error("unexpected end of expression", self.source, token.pos)
        return _error(f"unexpected token {token.text!r}", self.source, token.pos)

    def node(
        self, kind: str, pos: int, value: Any = None, children: tuple[_Node, ...] = ()
    ) -> _Node:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _error(
                f"expression is too complex (more than {MAX_NODES} nodes)", self.source, pos
            )
        return _Node(kind, pos, value, children)

    def operator(self, token: _Token) -> str | None:
        """The infix operator a token stands for here, or None if it ends the expression."""
        if token.kind == "op" or (token.kind == "name" and token.text in _WORD_OPERATORS):
            if token.text == "not" and not (
                self.peek(1).kind == "name" and self.peek(1).text == "in"
            ):
                return None
            return token.text if token.text in _INFIX_BP else None
        return None

    # -- Pratt core

    def expression(self, min_bp: int) -> _Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _error(
                f"expression is nested too deeply (more than {MAX_DEPTH} levels)",
                self.source,
                self.peek().pos,
            )
        left = self.prefix(self.advance())
        while True:
            op = self.operator(self.peek())
            if op is None or _INFIX_BP[op] <= min_bp:
                break
            left = self.infix(left, op)
        self.depth -= 1
        return left

    def prefix(self, token: _Token) -> _Node:
        if token.kind in ("number", "string"):
            return self.node("literal", token.pos, token.value)
        if token.kind == "name":
            name = token.text
            if name in _CONSTANTS:
                return self.node("literal", token.pos, _CONSTANTS[name])
            if name == "not":
                operand = self.expression(_NOT_BP)
                return self.node("unary", token.pos, "not", (operand,))
            if name in _RESERVED:
                raise _error(f"'{name}' is not supported", self.source, token.pos)
            if name in _WORD_OPERATORS:
                raise self.unexpected(token)
            self.check_name(name, token.pos)
            return self.node("name", token.pos, name)
        if token.kind == "op":
            if token.text == "(":
                inner = self.expression(0)
                self.expect(")")
                return inner
            if token.text == "[":
                return self.node("list", token.pos, None, self.items("]"))
            if token.text == "{":
                return self.object_literal(token)
            if token.text in ("-", "+", "!"):
                operand = self.expression(_PREFIX_BP)
                return self.node("unary", token.pos, token.text, (operand,))
        raise self.unexpected(token)

    def check_name(self, name: str, pos: int) -> None:
        if not _name_allowed(name):
            raise _error(
                f"name {name!r} is not allowed (names may not start with '_' or contain '__'; "
                "'_outputs' is the one exception)",
                self.source,
                pos,
            )

    def items(self, close: str) -> tuple[_Node, ...]:
        items: list[_Node] = []
        while not self.is_op(self.peek(), close):
            items.append(self.expression(0))
            if not self.is_op(self.peek(), ","):
                break
            self.advance()
        self.expect(close)
        return tuple(items)

    def object_literal(self, opening: _Token) -> _Node:
        keys: list[str] = []
        values: list[_Node] = []
        while not self.is_op(self.peek(), "}"):
            key = self.advance()
            if key.kind != "string":
                raise _error("object keys must be quoted strings", self.source, key.pos)
            self.expect(":")
            keys.append(key.value)
            values.append(self.expression(0))
            if not self.is_op(self.peek(), ","):
                break
            self.advance()
        self.expect("}")
        return self.node("object", opening.pos, tuple(keys), tuple(values))

    def infix(self, left: _Node, op: str) -> _Node:
        token = self.peek()
        if op == "?":
            self.advance()
            then = self.expression(0)
            self.expect(":")
            otherwise = self.expression(0)
            return self.node("cond", token.pos, None, (left, then, otherwise))
        if op == "if":
            self.advance()
            test = self.expression(_TERNARY_BP)
            self.expect("else")
            otherwise = self.expression(0)
            return self.node("cond", token.pos, None, (test, left, otherwise))
        if op == "**":
            self.advance()
            exponent = self.expression(_PREFIX_BP)
            return self.node("power", token.pos, None, (left, exponent))
        if op in (".", "?.", "["):
            return self.access(left)
        if op == "(":
            return self.call(left, token)
        for kind, table, bp in (
            ("logic", _OR_OPS, _OR_BP),
            ("logic", _AND_OPS, _AND_BP),
            ("compare", _COMPARE_OPS, _COMPARE_BP),
            ("arith", _SUM_OPS, _SUM_BP),
            ("arith", _TERM_OPS, _TERM_BP),
        ):
            if op in table:
                return self.chain(kind, left, table, bp)
        raise self.unexpected(token)  # pragma: no cover - every infix op is handled above

    def chain(self, kind: str, left: _Node, table: Mapping[str, str], bp: int) -> _Node:
        """``a op b op c ...`` at one precedence level, as one node (left to right)."""
        operands = [left]
        ops: list[tuple[str, int, str]] = []
        while True:
            token = self.peek()
            op = self.operator(token)
            if op is None or op not in table:
                break
            self.advance()
            name, text = table[op], token.text
            if op == "not":
                self.expect("in")
                text = "not in"
            elif op == "is" and self.peek().kind == "name" and self.peek().text == "not":
                self.advance()
                name, text = "!==", "is not"
            ops.append((name, token.pos, text))
            operands.append(self.expression(bp))
        return self.node(kind, left.pos, tuple(ops), tuple(operands))

    def access(self, left: _Node) -> _Node:
        if left.kind == "access":
            base, keys, positions = left.children[0], list(left.children[1:]), list(left.value)
        else:
            base, keys, positions = left, [], []
        while True:
            token = self.peek()
            if self.is_op(token, ".") or self.is_op(token, "?."):
                self.advance()
                if token.text == "?." and self.is_op(self.peek(), "["):
                    self.advance()
                    key = self.expression(0)
                    self.expect("]")
                else:
                    name = self.advance()
                    if name.kind != "name":
                        raise _error(f"expected a name after {token.text!r}", self.source, name.pos)
                    self.check_name(name.text, name.pos)
                    key = self.node("literal", name.pos, name.text)
            elif self.is_op(token, "["):
                self.advance()
                key = self.expression(0)
                self.expect("]")
            else:
                break
            keys.append(key)
            positions.append(token.pos)
        return self.node("access", base.pos, tuple(positions), (base, *keys))

    def call(self, left: _Node, paren: _Token) -> _Node:
        if left.kind == "access":
            last = left.children[-1]
            shown = f"'.{last.value}()'" if last.kind == "literal" else "on a value"
            raise _error(f"method calls are not allowed ({shown})", self.source, paren.pos)
        if left.kind != "name":
            raise _error(
                f"only these functions can be called: {', '.join(_FUNCTIONS)}",
                self.source,
                paren.pos,
            )
        name = left.value
        function = _FUNCTIONS.get(name)
        if function is None:
            raise _error(
                f"function {name!r} is not allowed (allowed: {', '.join(_FUNCTIONS)})",
                self.source,
                left.pos,
            )
        self.advance()
        args = self.items(")")
        if len(args) < function.min_args or (
            function.max_args is not None and len(args) > function.max_args
        ):
            expected = (
                f"exactly {function.min_args}"
                if function.min_args == function.max_args
                else f"at least {function.min_args}"
            )
            raise _error(
                f"{name}() takes {expected} argument(s), got {len(args)}", self.source, left.pos
            )
        return self.node("call", left.pos, name, args)
