"""A run's context as a node sees it on a worker: read from the head, decoded on first use.

The head keeps small values inline and points at large ones (in the item of the node that wrote
them, or in the payload bucket); a node that never reads a large value never pays to fetch it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .plan import Plan
from .records import COMPLETED, NodeRecord
from .state import RunItems

_MISSING = object()


class StoredContext(Mapping[str, Any]):
    """The head's context entries, decoded lazily and at most once per job."""

    def __init__(self, items: RunItems, run_id: str, stored: Mapping[str, Any]) -> None:
        self._items = items
        self._run_id = run_id
        self._stored = stored
        self._decoded: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        value = self._decoded.get(key, _MISSING)
        if value is _MISSING:
            if key not in self._stored:
                raise KeyError(key)
            value = self._items.context_value(self._run_id, key, self._stored[key])
            self._decoded[key] = value
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._stored)

    def __len__(self) -> int:
        return len(self._stored)

    def __contains__(self, key: object) -> bool:
        return key in self._stored


class StoredOutputs:
    """Node outputs read from a run's node items, for ``_outputs.<id>`` and bare node ids in
    conditions, ``inputs`` and node code (the ``OutputSource`` the in-memory scheduler is).

    Nothing is stored twice: a read finds the node's latest completed instance and decodes its
    output, once per job; a job that never reads one never pays for it.
    """

    def __init__(
        self,
        runs: RunItems,
        plan: Plan,
        run_id: str,
        current: str,
        latest: Callable[[Plan, str, list[str], str], dict[str, str]],
        known: Mapping[str, NodeRecord] | None = None,
    ) -> None:
        self._runs = runs
        self._plan = plan
        self._run_id = run_id
        self._current = current
        self._latest = latest
        self._known = known or {}
        self._found: dict[str, tuple[bool, Any]] = {}

    def note(self, node_id: str, output: Any) -> None:
        """The output of the instance being committed (its edges may read it by name)."""
        self._found[node_id] = (True, output)

    def output_of(self, node_id: str) -> tuple[bool, Any]:
        if node_id not in self._plan.graph.nodes:
            return False, None
        found = self._found.get(node_id)
        if found is None:
            instance = self._latest(self._plan, self._run_id, [node_id], self._current).get(
                node_id, node_id
            )
            record = self._known.get(instance)
            if record is None:
                record = self._runs.nodes(self._run_id, [instance]).get(instance)
            if record is not None and record.status == COMPLETED:
                found = (True, self._runs.codec.decode(record.stored))
            else:
                found = (False, None)
            self._found[node_id] = found
        return found

    def latest_outputs(self) -> dict[str, Any]:
        return {n: value for n in self._plan.graph.order for ok, value in [self.output_of(n)] if ok}
