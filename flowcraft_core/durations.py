"""Durations as flowcraft writes them: milliseconds as a number, or ``"500ms"``, ``"5s"``,
``"10m"``, ``"1h"``, ``"2d"``. The one parser every duration-taking place uses (sleep's
``duration``, ``retryDelay`` and ``timeout`` in node config and map params)."""

from __future__ import annotations

import math
import re
from typing import Any

from .errors import FlowcraftError

_UNITS_MS = {"ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0, "d": 86_400_000.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")


class DurationError(FlowcraftError, ValueError):
    """A duration that is neither a number of milliseconds nor a ``<number><unit>`` string."""


def parse_duration_ms(value: Any, what: str = "duration") -> float:
    """Milliseconds from a number (already ms) or a string such as ``"5s"`` or ``"500ms"``.

    A bare number in a string (``"250"``) is milliseconds too. Negative, infinite or
    unparseable values raise ``DurationError`` naming ``what``.
    """
    if isinstance(value, bool):
        raise DurationError(f"{what} must be milliseconds or a string like '5s', not {value!r}")
    if isinstance(value, int | float):
        ms = float(value)
    elif isinstance(value, str):
        match = _PATTERN.match(value)
        if match is None:
            raise DurationError(
                f"{what} {value!r} is not a duration: use milliseconds or a number with a unit "
                "ms, s, m, h or d ('500ms', '5s', '10m', '1h', '2d')"
            )
        ms = float(match.group(1)) * _UNITS_MS[match.group(2) or "ms"]
    else:
        raise DurationError(
            f"{what} must be milliseconds or a string like '5s', not {type(value).__name__}"
        )
    if math.isnan(ms) or math.isinf(ms) or ms < 0:
        raise DurationError(f"{what} must be a finite, non-negative duration, not {value!r}")
    return ms
