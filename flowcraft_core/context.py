"""The run context: the key-value state every node of a run shares.

Drivers provide implementations: ``InMemoryContext`` here, ``DynamoDbContext`` on AWS. The
protocol is async so a node written once works against either.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any, Protocol, runtime_checkable

#: flowcraft exposes each node's output in the context as ``_outputs.<node id>`` (and under the
#: bare node id). We never store them twice: reads of those keys are answered from the run's
#: node results through an ``OutputSource``.
OUTPUTS_PREFIX = "_outputs."
OUTPUTS_ROOT = "_outputs"
#: A start node's input may come in through the context as ``_inputs.<node id>`` (flowcraft's
#: way of handing a subflow node's input to the child's start nodes).
INPUTS_PREFIX = "_inputs."


class OutputSource(Protocol):
    """Where a driver keeps node results: the latest output of a completed node."""

    def output_of(self, node_id: str) -> tuple[bool, Any]: ...


def read_output(source: OutputSource | None, key: str) -> tuple[bool, Any]:
    """Answer a context read from node outputs: ``_outputs.<id>``, ``_outputs`` (all of
    them, as a mapping) or a bare node id. (False, None) when ``key`` names no output."""
    if source is None:
        return False, None
    if key.startswith(OUTPUTS_PREFIX):
        return source.output_of(key[len(OUTPUTS_PREFIX) :])
    if key == OUTPUTS_ROOT:
        return True, OutputsMapping(source)
    return source.output_of(key)


class OutputsMapping(Mapping[str, Any]):
    """``_outputs`` in expressions: node id -> output, read-only, resolved on access."""

    __slots__ = ("_source",)

    def __init__(self, source: OutputSource) -> None:
        self._source = source

    def __getitem__(self, key: str) -> Any:
        found, value = self._source.output_of(key)
        if not found:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        found, value = self._source.output_of(key)
        return value if found else default

    def _all(self) -> Mapping[str, Any]:
        listing = getattr(self._source, "latest_outputs", None)
        return listing() if callable(listing) else {}

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


class ContextView(Mapping[str, Any]):
    """The run context as expressions and input references see it: the context's own keys
    first, then node outputs (``_outputs.<id>``, ``_outputs``, the bare node id).

    Live over ``data`` (no copy). A distributed driver builds one over its loaded context and
    an ``OutputSource`` answering from its node records.
    """

    __slots__ = ("data", "source")

    def __init__(self, data: Mapping[str, Any], source: OutputSource | None) -> None:
        self.data = data
        self.source = source

    def __getitem__(self, key: str) -> Any:
        data = self.data
        if key in data:
            return data[key]
        found, value = read_output(self.source, key)
        if found:
            return value
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        data = self.data
        if key in data:
            return data[key]
        found, value = read_output(self.source, key)
        return value if found else default

    def __contains__(self, key: object) -> bool:
        if key in self.data:
            return True
        return isinstance(key, str) and read_output(self.source, key)[0]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


class ExpressionScope(Mapping[str, Any]):
    """The names an expression sees: fixed ones (``result``, ``input``, ``context``...), then
    the context's keys and node outputs, as flowcraft evaluates over the context itself."""

    __slots__ = ("fallback", "fixed")

    def __init__(self, fixed: Mapping[str, Any], fallback: Mapping[str, Any]) -> None:
        self.fixed = fixed
        self.fallback = fallback

    def __getitem__(self, key: str) -> Any:
        if key in self.fixed:
            return self.fixed[key]
        return self.fallback[key]

    def get(self, key: str, default: Any = None) -> Any:
        fixed = self.fixed
        if key in fixed:
            return fixed[key]
        return self.fallback.get(key, default)

    def __iter__(self) -> Iterator[str]:
        return iter({**self.fallback, **self.fixed})

    def __len__(self) -> int:
        return len({**self.fallback, **self.fixed})


def cycle_entry_points(metadata: Mapping[str, Any]) -> list[str]:
    """flowcraft's optional ``metadata.cycleEntryPoints`` (ignored when malformed)."""
    value = metadata.get("cycleEntryPoints", metadata.get("cycle_entry_points"))
    if isinstance(value, list | tuple):
        return [item for item in value if isinstance(item, str)]
    return []


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
    """A dict behind the async context protocol. ``data`` is the live dict (no copies).

    With an ``outputs`` source, reads of keys the context does not hold fall back to node
    outputs (``_outputs.<id>`` or the bare node id), as in flowcraft.
    """

    __slots__ = ("data", "outputs", "view")

    def __init__(
        self, initial: Mapping[str, Any] | None = None, outputs: OutputSource | None = None
    ) -> None:
        # A deep copy: a run never shares nested objects with its caller or another run (on
        # AWS the context is serialised, so nodes behave the same in both drivers).
        self.data: dict[str, Any] = copy.deepcopy(dict(initial)) if initial else {}
        self.outputs = outputs
        #: What expressions and input references read: the data, then node outputs.
        self.view = ContextView(self.data, outputs)

    def attach_outputs(self, source: OutputSource | None) -> None:
        """Answer reads of node outputs from ``source`` (the driver's node results)."""
        self.outputs = source
        self.view = ContextView(self.data, source)

    async def get(self, key: str, default: Any = None) -> Any:
        data = self.data
        if key in data:
            return data[key]
        found, value = read_output(self.outputs, key)
        return value if found else default

    async def set(self, key: str, value: Any) -> None:
        self.data[check_key(key)] = value

    async def has(self, key: str) -> bool:
        return key in self.data or read_output(self.outputs, key)[0]

    async def delete(self, key: str) -> None:
        self.data.pop(key, None)

    async def to_dict(self) -> dict[str, Any]:
        return dict(self.data)

    def snapshot(self) -> Mapping[str, Any]:
        return self.data


class OverlayContext(Mapping[str, Any]):
    """A context with a node's own (not yet committed) writes and deletions on top."""

    def __init__(
        self, base: Mapping[str, Any], written: Mapping[str, Any], deleted: set[str]
    ) -> None:
        self._base = base
        self._written = written
        self._deleted = deleted

    def __getitem__(self, key: str) -> Any:
        if key in self._written:
            return self._written[key]
        if key in self._deleted:
            raise KeyError(key)
        return self._base[key]

    def __iter__(self) -> Iterator[str]:
        seen = set(self._written)
        yield from self._written
        for key in self._base:
            if key not in seen and key not in self._deleted:
                yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __contains__(self, key: object) -> bool:
        if key in self._written:
            return True
        return key not in self._deleted and key in self._base


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

    @property
    def view(self) -> OverlayContext:
        """The context as expressions read it: the base (with node outputs, where the driver
        offers them) under this node's own writes, as ``InMemoryContext.view`` is in memory."""
        return OverlayContext(self._base, self.written, self.deleted)

    def snapshot(self) -> dict[str, Any]:
        merged = {k: v for k, v in self._base.items() if k not in self.deleted}
        merged.update(self.written)
        return merged
