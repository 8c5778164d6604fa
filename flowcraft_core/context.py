"""The run context: the key-value state every node of a run shares.

Drivers provide implementations: ``InMemoryContext`` here, ``DynamoDbContext`` on AWS. The
protocol is async so a node written once works against either.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class AsyncContext(Protocol):
    async def get(self, key: str, default: Any = None) -> Any: ...
    async def set(self, key: str, value: Any) -> None: ...
    async def has(self, key: str) -> bool: ...
    async def delete(self, key: str) -> None: ...
    async def to_dict(self) -> dict[str, Any]: ...


def check_key(key: Any) -> str:
    """Context keys are non-empty strings (they become DynamoDB attribute names)."""
    if not isinstance(key, str) or not key:
        raise TypeError(f"context keys must be non-empty strings, not {key!r}")
    return key


class InMemoryContext:
    """A dict behind the async context protocol. ``data`` is the live dict (no copies)."""

    __slots__ = ("data",)

    def __init__(self, initial: Mapping[str, Any] | None = None) -> None:
        # A deep copy: a run never shares nested objects with its caller or another run (on
        # AWS the context is serialised, so nodes behave the same in both drivers).
        self.data: dict[str, Any] = copy.deepcopy(dict(initial)) if initial else {}

    async def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    async def set(self, key: str, value: Any) -> None:
        self.data[check_key(key)] = value

    async def has(self, key: str) -> bool:
        return key in self.data

    async def delete(self, key: str) -> None:
        self.data.pop(key, None)

    async def to_dict(self) -> dict[str, Any]:
        return dict(self.data)

    def snapshot(self) -> Mapping[str, Any]:
        return self.data


class BufferedContext:
    """A context over a loaded snapshot whose writes are collected, not sent.

    The distributed worker commits a node's context writes together with its result in one
    conditional write, so a node that is re-run after a crash never leaves half its writes behind.
    """

    __slots__ = ("_base", "deleted", "written")

    _MISSING = object()

    def __init__(self, base: Mapping[str, Any]) -> None:
        self._base = base
        self.written: dict[str, Any] = {}
        self.deleted: set[str] = set()

    async def get(self, key: str, default: Any = None) -> Any:
        if key in self.written:
            return self.written[key]
        if key in self.deleted:
            return default
        return self._base.get(key, default)

    async def set(self, key: str, value: Any) -> None:
        self.written[check_key(key)] = value
        self.deleted.discard(key)

    async def has(self, key: str) -> bool:
        return key in self.written or (key not in self.deleted and key in self._base)

    async def delete(self, key: str) -> None:
        self.written.pop(key, None)
        self.deleted.add(key)

    async def to_dict(self) -> dict[str, Any]:
        return dict(self.snapshot())

    def snapshot(self) -> dict[str, Any]:
        merged = {k: v for k, v in self._base.items() if k not in self.deleted}
        merged.update(self.written)
        return merged
