"""Compiled graphs of blueprint dicts, reused only for a dict equal in every value and type."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .scheduler import CompiledGraph


class _Exact:
    """A number in a snapshot that equals only the same number of the same type (``1`` is
    not ``1.0`` nor ``True`` here), so a snapshot comparison sees such a change."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self.value) and other == self.value

    def __hash__(self) -> int:
        return hash(self.value)


def _snapshot(value: Any) -> Any:
    """A deep copy of JSON-like data with numbers made type-exact (``_Exact``)."""
    kind = type(value)
    if kind is str or value is None:
        return value
    if kind is int or kind is float or kind is bool:
        return _Exact(value)
    if isinstance(value, Mapping):
        return {(k if type(k) is str else _Exact(k)): _snapshot(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return kind(_snapshot(v) for v in value)
    raise TypeError(f"not JSON-like data: {kind.__name__}")


class GraphCache:
    """Compiled graphs of blueprint dicts, reused only for a dict equal in every value and
    type to the one compiled (checked against a deep snapshot on each lookup, which costs a
    C-level comparison, a fraction of a microsecond per node)."""

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self._entries: dict[tuple[Any, int, int], list[tuple[Any, CompiledGraph]]] = {}

    @staticmethod
    def _key(data: Mapping[str, Any]) -> tuple[Any, int, int] | None:
        nodes, edges = data.get("nodes"), data.get("edges")
        if not isinstance(nodes, list) or not isinstance(edges, list | None):
            return None
        blueprint_id = data.get("id")
        if not isinstance(blueprint_id, str):
            return None
        return blueprint_id, len(nodes), len(edges or ())

    def get(self, data: Mapping[str, Any]) -> CompiledGraph | None:
        key = self._key(data)
        candidates = self._entries.get(key) if key is not None else None
        if not candidates:
            return None
        for snapshot, graph in candidates:
            if data == snapshot:
                return graph
        return None

    def put(self, data: Mapping[str, Any], graph: CompiledGraph) -> None:
        key = self._key(data)
        if key is None:
            return
        try:
            snapshot = _snapshot(data)
        except TypeError:
            return  # not plain data: never cached
        if key not in self._entries and len(self._entries) >= self.size:
            self._entries.pop(next(iter(self._entries)))
        candidates = self._entries.setdefault(key, [])
        candidates.insert(0, (snapshot, graph))
        del candidates[4:]
