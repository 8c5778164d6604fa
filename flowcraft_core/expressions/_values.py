"""Values and operators: what expressions compute with, JSON-like data only."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from ._base import MAX_EXPONENT, MAX_INT, MAX_SEQUENCE, _OpError

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
