"""The tokenizer: expression text to tokens."""

from __future__ import annotations

import math
import re
from typing import Any, NamedTuple

from ._base import MAX_INT, _error


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
