"""What a run may store: JSON that DynamoDB (and any JSON store) keeps exactly.

Checked where values enter a run from outside (a start's context, a resume's output), so bad
input is refused with the path of the bad value before anything is written.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import FlowcraftError

#: DynamoDB's limits: 32 levels of nesting, 38 significant digits, exponents -130..+125.
MAX_DEPTH = 32
MAX_INTEGER = 10**38
SMALLEST = 1e-130
LARGEST = 1e126


class NotStorable(FlowcraftError, ValueError):
    """A value a run cannot store; the message names where it is."""


def check_storable(value: Any, where: str) -> None:
    _walk(value, where, 0)


def _walk(value: Any, path: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise NotStorable(f"{path}: nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if abs(value) >= MAX_INTEGER:
            raise NotStorable(f"{path}: integers may have at most 38 digits")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise NotStorable(f"{path}: {value} is not a finite number")
        if value and not SMALLEST <= abs(value) < LARGEST:
            raise NotStorable(f"{path}: {value!r} is outside the numbers a run can store")
        return
    if isinstance(value, str):
        _text(value, path)
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _walk(item, f"{path}[{index}]", depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise NotStorable(f"{path}: keys must be strings, not {type(key).__name__}")
            _text(key, f"{path} (key {key!r})")
            _walk(item, f"{path}.{key}", depth + 1)
        return
    raise NotStorable(f"{path}: a {type(value).__name__} is not JSON")


def _text(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise NotStorable(f"{path}: text is not valid Unicode (a lone surrogate?)") from None
