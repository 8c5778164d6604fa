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

import functools
import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from .errors import FlowcraftError

__all__ = [
    "MAX_DEPTH",
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
_Fn = Callable[[_Scope], Any]


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


# --------------------------------------------------------------------------- values


_OTHER = "other"
_NUMERIC = frozenset({"number", "boolean"})
_KIND_BY_TYPE: dict[type, str] = {
    type(None): "null",
    bool: "boolean",
    int: "number",
    float: "number",
    str: "string",
    list: "list",
    tuple: "list",
    dict: "object",
}
_KIND_BY_BASE: tuple[tuple[type, str], ...] = (
    (bool, "boolean"),
    (int, "number"),
    (float, "number"),
    (str, "string"),
    (list, "list"),
    (tuple, "list"),
    (dict, "object"),
    (Mapping, "object"),
)
#: Types whose ``==`` and ``hash`` are plain data operations.
_SCALARS = frozenset({str, int, float, bool, type(None)})


def _kind(value: Any) -> str:
    """The JSON category of a value, judged from its type only (never from the instance)."""
    kind = _KIND_BY_TYPE.get(type(value))
    if kind is not None:
        return kind
    cls = type(value)
    for base, name in _KIND_BY_BASE:
        if issubclass(cls, base):
            return name
    return _OTHER


def _describe(value: Any) -> str:
    kind = _kind(value)
    return type(value).__name__ if kind == _OTHER else kind


def is_truthy(value: Any) -> bool:
    """JavaScript-like truthiness for conditions.

    ``None``, ``False``, ``0``, ``0.0``, NaN, ``""`` and empty lists and dicts are false;
    everything else is true. Objects that are not plain data are true and are never asked
    (no ``__bool__`` / ``__len__`` call).
    """
    if value is None or value is False:
        return False
    if value is True:
        return True
    cls = type(value)
    if cls is str or cls is list or cls is dict or cls is tuple:
        return len(value) > 0
    if cls is int:
        return value != 0
    if cls is float:
        return value != 0.0 and value == value
    kind = _kind(value)
    if kind == "boolean":
        return bool(value)
    if kind == "number":
        return value != 0 and value == value
    if kind in ("string", "list", "object"):
        return len(value) > 0
    return True


def _eq(a: Any, b: Any) -> bool:
    """``==``: Python equality on plain data; other objects only equal themselves."""
    cls = type(a)
    if cls is type(b) and cls in _SCALARS:
        return bool(a == b)
    if a is b:
        return True
    ka, kb = _kind(a), _kind(b)
    if ka == _OTHER or kb == _OTHER:
        return False
    if ka == "list" or kb == "list":
        return ka == kb and len(a) == len(b) and all(_eq(x, y) for x, y in zip(a, b, strict=True))
    if ka == "object" or kb == "object":
        return ka == kb and len(a) == len(b) and all(k in b and _eq(v, b[k]) for k, v in a.items())
    return bool(a == b)


def _strict_eq(a: Any, b: Any) -> bool:
    """``===``: like ``==`` but booleans never equal numbers (``1 === 1.0`` is still true)."""
    ka, kb = _kind(a), _kind(b)
    if ka != kb:
        return False
    if ka == _OTHER:
        return a is b
    if ka == "list":
        return len(a) == len(b) and all(_strict_eq(x, y) for x, y in zip(a, b, strict=True))
    if ka == "object":
        return len(a) == len(b) and all(k in b and _strict_eq(v, b[k]) for k, v in a.items())
    return bool(a == b)


def _not_eq(a: Any, b: Any) -> bool:
    return not _eq(a, b)


def _not_strict_eq(a: Any, b: Any) -> bool:
    return not _strict_eq(a, b)


def _make_order(symbol: str, compare: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def order(a: Any, b: Any) -> bool:
        ta, tb = type(a), type(b)
        if (ta is int or ta is float) and (tb is int or tb is float):
            return compare(a, b)
        if ta is str and tb is str:
            return compare(a, b)
        ka, kb = _kind(a), _kind(b)
        if (ka in _NUMERIC and kb in _NUMERIC) or ka == kb == "string":
            return compare(a, b)
        if ka == kb == "list":
            for x, y in zip(a, b, strict=False):
                if not _eq(x, y):
                    return order(x, y)
            return compare(len(a), len(b))
        raise _OpError(f"cannot compare {_describe(a)} and {_describe(b)} with '{symbol}'")

    return order


def _contains(item: Any, container: Any) -> bool:
    """``in``: element of a list, substring of a string, key of an object; ``in null`` is false."""
    kc = _kind(container)
    if kc == "list":
        return any(x is item or _eq(x, item) for x in container)
    if kc == "string":
        if _kind(item) != "string":
            raise _OpError(f"'in <string>' needs a string on the left, got {_describe(item)}")
        return bool(item in container)
    if kc == "object":
        if _kind(item) not in ("string", "number", "boolean", "null"):
            raise _OpError(f"cannot look up {_describe(item)} as a key of an object")
        return bool(item in container)
    if kc == "null":
        return False
    raise _OpError(f"'in' needs a list, string or object on the right, got {_describe(container)}")


def _not_contains(item: Any, container: Any) -> bool:
    return not _contains(item, container)


def _checked(result: Any) -> Any:
    if type(result) is int and (result > MAX_INT or result < -MAX_INT):
        raise _OpError("integer result is larger than 10**100")
    return result


def _unsupported(symbol: str, a: Any, b: Any, hint: str = "") -> _OpError:
    return _OpError(
        f"unsupported operand types for '{symbol}': {_describe(a)} and {_describe(b)}{hint}"
    )


def _require_numbers(symbol: str, a: Any, b: Any) -> None:
    if _kind(a) not in _NUMERIC or _kind(b) not in _NUMERIC:
        raise _unsupported(symbol, a, b)


def _add(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if (ta is int or ta is float) and (tb is int or tb is float):
        return _checked(a + b)
    if ta is str and tb is str:
        return a + b
    ka, kb = _kind(a), _kind(b)
    if ka in _NUMERIC and kb in _NUMERIC:
        return _checked(a + b)
    if ka == kb == "string":
        return str.__add__(a, b)
    if ka == kb == "list":
        return [*a, *b]
    hint = " (convert with str() first)" if "string" in (ka, kb) else ""
    raise _unsupported("+", a, b, hint)


def _sub(a: Any, b: Any) -> Any:
    _require_numbers("-", a, b)
    return _checked(a - b)


def _repeat(sequence: Any, count: Any) -> Any:
    if count > 1 and (count > MAX_SEQUENCE or len(sequence) * count > MAX_SEQUENCE):
        raise _OpError(
            f"repetition would make {len(sequence) * count} items; the limit is {MAX_SEQUENCE}"
        )
    if _kind(sequence) == "list":
        return list(sequence) * max(count, 0)
    return str.__str__(sequence) * max(count, 0)


def _mul(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if (ta is int or ta is float) and (tb is int or tb is float):
        return _checked(a * b)
    ka, kb = _kind(a), _kind(b)
    if ka in _NUMERIC and kb in _NUMERIC:
        return _checked(a * b)
    if ka in ("string", "list") and kb == "number" and issubclass(type(b), int):
        return _repeat(a, int(b))
    if kb in ("string", "list") and ka == "number" and issubclass(type(a), int):
        return _repeat(b, int(a))
    raise _unsupported("*", a, b)


def _truediv(a: Any, b: Any) -> Any:
    _require_numbers("/", a, b)
    if b == 0:
        raise _OpError("division by zero")
    try:
        return a / b
    except OverflowError:
        raise _OpError("number is too large to divide") from None


def _floordiv(a: Any, b: Any) -> Any:
    _require_numbers("//", a, b)
    if b == 0:
        raise _OpError("division by zero")
    return _checked(a // b)


def _mod(a: Any, b: Any) -> Any:
    _require_numbers("%", a, b)
    if b == 0:
        raise _OpError("modulo by zero")
    return a % b


def _pow(a: Any, b: Any) -> Any:
    _require_numbers("**", a, b)
    if b > MAX_EXPONENT:
        raise _OpError(f"exponent {b} is larger than {MAX_EXPONENT}")
    # Refuse before computing: a result of at least 2 ** ((bits - 1) * b) is surely too big,
    # and anything that passes this test has at most MAX_INT's bits + b bits: cheap to compute.
    if (
        issubclass(type(a), int)
        and issubclass(type(b), int)
        and b > 0
        and (abs(int(a)).bit_length() - 1) * int(b) > MAX_INT.bit_length()
    ):
        raise _OpError("integer result is larger than 10**100")
    try:
        result = a**b
    except ZeroDivisionError:
        raise _OpError("zero cannot be raised to a negative power") from None
    except OverflowError:
        raise _OpError("result of '**' is too large") from None
    if type(result) is complex:
        raise _OpError("result of '**' is not a real number")
    return _checked(result)


def _neg(a: Any) -> Any:
    if _kind(a) not in _NUMERIC:
        raise _OpError(f"bad operand type for unary '-': {_describe(a)}")
    return _checked(-a)


def _pos(a: Any) -> Any:
    if _kind(a) not in _NUMERIC:
        raise _OpError(f"bad operand type for unary '+': {_describe(a)}")
    return _checked(+a)


def _get(value: Any, key: Any) -> Any:
    """One step of a path: plain data only, ``None`` when the key or index is missing."""
    cls = type(value)
    if cls is dict:
        tk = type(key)
        if tk is str or tk is int:
            return value.get(key)
    if value is None:
        return None
    kind = _kind(value)
    if kind == "object":
        if _kind(key) not in ("string", "number", "boolean", "null"):
            raise _OpError(f"cannot use {_describe(key)} as a key")
        if issubclass(type(value), dict):
            return dict.get(value, key)
        try:
            return value[key]
        except (KeyError, IndexError, TypeError):
            return None
    if kind in ("list", "string"):
        if type(key) is int:
            return value[key] if -len(value) <= key < len(value) else None
        if key == "length" and type(key) is str:  # JavaScript's array.length / string.length
            return len(value)
        return None
    # Numbers, booleans and foreign objects have no members: never getattr.
    return None


# --------------------------------------------------------------------------- functions


def _fn_len(value: Any) -> int:
    if _kind(value) in ("string", "list", "object"):
        return len(value)
    raise _OpError(f"len() needs a string, list or object, got {_describe(value)}")


def _extreme(name: str, pick: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    items: Any = args
    if len(args) == 1:
        if _kind(args[0]) != "list":
            raise _OpError(f"{name}() of one argument needs a list, got {_describe(args[0])}")
        items = args[0]
    if not items:
        raise _OpError(f"{name}() of an empty list")
    kinds = {_kind(item) for item in items}
    if not (kinds <= _NUMERIC or kinds == {"string"}):
        names = ", ".join(sorted(kinds))
        raise _OpError(f"{name}() needs all numbers or all strings, got {names}")
    return pick(items)


def _fn_min(*args: Any) -> Any:
    return _extreme("min", min, args)


def _fn_max(*args: Any) -> Any:
    return _extreme("max", max, args)


def _fn_abs(value: Any) -> Any:
    if _kind(value) not in _NUMERIC:
        raise _OpError(f"abs() needs a number, got {_describe(value)}")
    return abs(value)


def _json_size(value: Any, budget: int) -> None:
    """Refuse data that is not plain JSON or would render to more than ``budget`` characters."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = _kind(item)
        budget -= len(item) + 1 if kind == "string" else 2
        if kind == "list":
            stack.extend(item)
        elif kind == "object":
            for key, inner in item.items():
                if _kind(key) not in ("string", "number", "boolean", "null"):
                    raise _OpError(f"str() cannot render a key of type {_describe(key)}")
                stack.append(inner)
        elif kind == _OTHER:
            raise _OpError(f"str() cannot render a {_describe(item)}")
        if budget < 0:
            raise _OpError(f"str() result would be longer than {MAX_SEQUENCE} characters")


def _fn_str(value: Any) -> str:
    """JSON spelling for null/booleans/containers, so transforms produce JSON-friendly text."""
    kind = _kind(value)
    if kind == "string":
        return str.__str__(value)
    if kind == "null":
        return "null"
    if kind == "boolean":
        return "true" if value else "false"
    if kind == "number":
        return repr(float(value)) if issubclass(type(value), float) else str(int(value))
    if kind in ("list", "object"):
        _json_size(value, MAX_SEQUENCE)
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    raise _OpError(f"str() cannot convert a {_describe(value)}")


def _fn_int(value: Any) -> int:
    kind = _kind(value)
    if kind in _NUMERIC:
        if issubclass(type(value), float) and not math.isfinite(value):
            raise _OpError(f"int() cannot convert {value!r}")
        return int(_checked(int(value)))
    if kind == "string":
        text = str.strip(value)
        if len(text) <= 102:
            try:
                return int(_checked(int(text)))
            except ValueError:
                pass
        raise _OpError(f"int() cannot convert {json.dumps(value[:40], ensure_ascii=False)}")
    raise _OpError(f"int() needs a number or a string, got {_describe(value)}")


def _fn_float(value: Any) -> float:
    kind = _kind(value)
    try:
        if kind in _NUMERIC:
            result = float(value)
        elif kind == "string":
            result = float(str.strip(value))
        else:
            raise _OpError(f"float() needs a number or a string, got {_describe(value)}")
    except (ValueError, OverflowError):
        shown = json.dumps(value[:40], ensure_ascii=False) if kind == "string" else "number"
        raise _OpError(f"float() cannot convert {shown}") from None
    if not math.isfinite(result):
        raise _OpError("float() result is not a finite number")
    return result


def _fn_lower(value: Any) -> str:
    if _kind(value) != "string":
        raise _OpError(f"lower() needs a string, got {_describe(value)}")
    return str.lower(value)


def _fn_upper(value: Any) -> str:
    if _kind(value) != "string":
        raise _OpError(f"upper() needs a string, got {_describe(value)}")
    return str.upper(value)


class _Function(NamedTuple):
    impl: Callable[..., Any]
    min_args: int
    max_args: int | None


#: The complete list of callable names. Anything else is refused at compile time.
_FUNCTIONS: dict[str, _Function] = {
    "abs": _Function(_fn_abs, 1, 1),
    "float": _Function(_fn_float, 1, 1),
    "int": _Function(_fn_int, 1, 1),
    "len": _Function(_fn_len, 1, 1),
    "lower": _Function(_fn_lower, 1, 1),
    "max": _Function(_fn_max, 1, None),
    "min": _Function(_fn_min, 1, None),
    "str": _Function(_fn_str, 1, 1),
    "upper": _Function(_fn_upper, 1, 1),
}


# --------------------------------------------------------------------------- tokenizer


class _Token(NamedTuple):
    kind: str  # "number", "string", "name", "op" or "end"
    value: Any
    pos: int
    text: str


_TOKEN_RE = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<quote>["'])
  | (?P<op>===|!==|==|!=|<=|>=|\*\*|//|&&|\|\||\?\?|\?\.(?![0-9])|[-+*/%<>!()\[\]{},.?:])
    """,
    re.VERBOSE | re.ASCII,
)
_NAME_CHAR = re.compile(r"[A-Za-z0-9_]", re.ASCII)
_HINTS = {
    "=": "'=' is not an operator here; use '==' to compare",
    "&": "unexpected character '&'; use '&&' or 'and'",
    "|": "unexpected character '|'; use '||' or 'or'",
}
_ESCAPES = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "b": "\b",
    "f": "\f",
    "v": "\v",
    "0": "\0",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "/": "/",
}
_HEX_WIDTH = {"x": 2, "u": 4, "U": 8}
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def _scan_string(source: str, start: int) -> tuple[str, int]:
    """Read the string literal opening at ``start``; return its value and the end position."""
    quote = source[start]
    parts: list[str] = []
    i = start + 1
    n = len(source)
    while i < n:
        ch = source[i]
        if ch == quote:
            return "".join(parts), i + 1
        if ch != "\\":
            parts.append(ch)
            i += 1
            continue
        if i + 1 >= n:
            break
        esc = source[i + 1]
        if esc in _ESCAPES:
            parts.append(_ESCAPES[esc])
            i += 2
            continue
        width = _HEX_WIDTH.get(esc)
        digits = source[i + 2 : i + 2 + width] if width else ""
        if width and len(digits) == width and set(digits) <= _HEX_DIGITS:
            code = int(digits, 16)
            if code <= 0x10FFFF:
                parts.append(chr(code))
                i += 2 + width
                continue
        raise _error(f"invalid escape sequence {source[i : i + 2]!r}", source, i)
    raise _error("unterminated string", source, start)


def _number(text: str, source: str, pos: int) -> int | float:
    if any(c in text for c in ".eE"):
        value = float(text)
        if not math.isfinite(value):
            raise _error(f"number {text} is too large", source, pos)
        return value
    if len(text) > 101 or int(text) > MAX_INT:
        raise _error("integer literal is larger than 10**100", source, pos)
    return int(text)


def _tokenize(source: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    n = len(source)
    while pos < n:
        match = _TOKEN_RE.match(source, pos)
        if match is None:
            ch = source[pos]
            raise _error(_HINTS.get(ch, f"unexpected character {ch!r}"), source, pos)
        kind = match.lastgroup
        end = match.end()
        text = match.group()
        if kind == "number":
            if end < n and _NAME_CHAR.match(source, end):
                raise _error(f"invalid number {source[pos : end + 1]!r}", source, pos)
            tokens.append(_Token("number", _number(text, source, pos), pos, text))
        elif kind == "name":
            tokens.append(_Token("name", text, pos, text))
        elif kind == "quote":
            value, end = _scan_string(source, pos)
            tokens.append(_Token("string", value, pos, source[pos:end]))
        elif kind == "op":
            tokens.append(_Token("op", text, pos, text))
        pos = end
    tokens.append(_Token("end", None, n, ""))
    return tokens


# --------------------------------------------------------------------------- parser


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


# --------------------------------------------------------------------------- compiler


class _Code(NamedTuple):
    fn: _Fn
    const: bool = False
    value: Any = None
    #: For list literals of constants: the items as a tuple (used by ``in [...]``).
    frozen: tuple[Any, ...] | None = None


def _constant(value: Any) -> _Code:
    def constant(scope: _Scope) -> Any:
        return value

    return _Code(constant, True, value)


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


def _make_path(root: str, keys: tuple[Any, ...]) -> _Fn:
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


def _make_walk(base: _Fn, keys: tuple[Any, ...]) -> _Fn:
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

    def compile(self, node: _Node) -> _Code:
        return self._DISPATCH[node.kind](self, node)

    def fold(self, fn: _Fn, parts: list[_Code]) -> _Code:
        """Evaluate now when every input is constant; errors become compile-time errors."""
        if all(part.const for part in parts):
            value = fn(_EMPTY_SCOPE)
            if _kind(value) not in ("list", "object"):  # never share a mutable result
                return _constant(value)
        return _Code(fn)

    def literal(self, node: _Node) -> _Code:
        return _constant(node.value)

    def name(self, node: _Node) -> _Code:
        return _Code(_make_path(node.value, ()))

    def access(self, node: _Node) -> _Code:
        base, *keys = node.children
        root: str | None = base.value if base.kind == "name" else None
        fn: _Fn | None = None if root is not None else self.compile(base).fn
        pending: list[Any] = []

        def flush() -> _Fn:
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
        return _Code(flush())

    def call(self, node: _Node) -> _Code:
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

            return self.fold(call_one, parts)
        fns = tuple(part.fn for part in parts)

        def call_many(scope: _Scope) -> Any:
            values = [f(scope) for f in fns]
            try:
                return impl(*values)
            except _OpError as exc:
                raise where(exc) from None

        return self.fold(call_many, parts)

    def list_literal(self, node: _Node) -> _Code:
        parts = [self.compile(item) for item in node.children]
        fns = tuple(part.fn for part in parts)

        def make_list(scope: _Scope) -> list[Any]:
            return [f(scope) for f in fns]

        frozen = tuple(part.value for part in parts) if all(p.const for p in parts) else None
        return _Code(make_list, frozen=frozen)

    def object_literal(self, node: _Node) -> _Code:
        pairs = tuple(
            (key, self.compile(value).fn)
            for key, value in zip(node.value, node.children, strict=True)
        )

        def make_object(scope: _Scope) -> dict[str, Any]:
            return {key: f(scope) for key, f in pairs}

        return _Code(make_object)

    def unary(self, node: _Node) -> _Code:
        part = self.compile(node.children[0])
        operand = part.fn
        if node.value in ("!", "not"):

            def negate(scope: _Scope) -> bool:
                return not is_truthy(operand(scope))

            return self.fold(negate, [part])
        op = _neg if node.value == "-" else _pos
        where = self.where(node.pos)

        def sign(scope: _Scope) -> Any:
            value = operand(scope)
            try:
                return op(value)
            except _OpError as exc:
                raise where(exc) from None

        return self.fold(sign, [part])

    def power(self, node: _Node) -> _Code:
        parts = [self.compile(child) for child in node.children]
        return self.fold(self._binary(_pow, parts[0].fn, parts[1].fn, node.pos), parts)

    def _binary(self, op: Callable[[Any, Any], Any], left: _Fn, right: _Fn, pos: int) -> _Fn:
        where = self.where(pos)

        def binary(scope: _Scope) -> Any:
            a = left(scope)
            b = right(scope)
            try:
                return op(a, b)
            except _OpError as exc:
                raise where(exc) from None

        return binary

    def arith(self, node: _Node) -> _Code:
        parts = [self.compile(child) for child in node.children]
        if len(parts) == 2:
            name, pos, _ = node.value[0]
            return self.fold(self._binary(_ARITH[name], parts[0].fn, parts[1].fn, pos), parts)
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

        return self.fold(arith_chain, parts)

    def logic(self, node: _Node) -> _Code:
        parts = [self.compile(child) for child in node.children]
        ops = tuple(name for name, _, _ in node.value)
        if len(parts) == 2:
            left, right = parts[0].fn, parts[1].fn
            if ops[0] == "and":

                def and_(scope: _Scope) -> Any:
                    a = left(scope)
                    return right(scope) if is_truthy(a) else a

                return self.fold(and_, parts)
            if ops[0] == "or":

                def or_(scope: _Scope) -> Any:
                    a = left(scope)
                    return a if is_truthy(a) else right(scope)

                return self.fold(or_, parts)

            def nullish(scope: _Scope) -> Any:
                a = left(scope)
                return a if a is not None else right(scope)

            return self.fold(nullish, parts)
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

        return self.fold(logic_chain, parts)

    def compare(self, node: _Node) -> _Code:
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

                return self.fold(compare_constant, parts)
            return self.fold(self._binary(op, left, parts[1].fn, pos), parts)
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

        return self.fold(compare_chain, parts)

    def cond(self, node: _Node) -> _Code:
        parts = [self.compile(child) for child in node.children]
        test, then, otherwise = (part.fn for part in parts)

        def conditional(scope: _Scope) -> Any:
            return then(scope) if is_truthy(test(scope)) else otherwise(scope)

        return self.fold(conditional, parts)

    _DISPATCH: dict[str, Callable[[_Compiler, _Node], _Code]] = {
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


def _index(base: _Fn, key_fn: _Fn, where: Callable[[_OpError], ExpressionError]) -> _Fn:
    """``base[key]`` with a key computed at run time."""

    def index(scope: _Scope) -> Any:
        value = base(scope)
        key = key_fn(scope)
        try:
            return _get(value, key)
        except _OpError as exc:
            raise where(exc) from None

    return index


# --------------------------------------------------------------------------- public API


class CompiledExpression:
    """A parsed, checked expression; ``evaluate`` is cheap and thread-safe."""

    __slots__ = ("_fn", "source")

    source: str

    def __init__(self, source: str, fn: _Fn) -> None:
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
