"""The item store: the few primitives the distributed driver needs from a key-value table.

A run is many small items (see ``layout``), and every rule about them (what a commit writes,
which conditions make it happen at most once) is written once, in this package, against these
primitives. DynamoDB implements them in ``flowcraft_core.aws.item_store``; the in-memory store
here behaves the same (conditions, set arithmetic, copies on read, the item size limit) so the
protocol can be tested in milliseconds.

Attribute paths are tuples: ``("ctx", "total")`` is the key ``total`` of the map ``ctx``.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, Protocol

Path = tuple[str, ...]
Item = dict[str, Any]

#: DynamoDB's item limit is 400 KB; writes are refused a little below it.
MAX_ITEM_BYTES = 400_000


@dataclass(frozen=True)
class Cond:
    """One test on an attribute: ``exists``, ``absent``, ``eq``, ``ne``, ``in`` or ``lt``."""

    path: Path
    op: Literal["exists", "absent", "eq", "ne", "in", "lt"]
    value: Any = None


#: A condition: all of the groups hold, each group when any of its tests holds.
Condition = Sequence[Sequence[Cond]]


@dataclass
class Update:
    """What one conditional write changes (applied in this order: set, set-if-absent, add,
    delete, remove)."""

    set: dict[Path, Any] = field(default_factory=dict)
    set_if_absent: dict[Path, Any] = field(default_factory=dict)
    #: Numbers are added; sets are unioned (idempotent, so a repeated arrival counts once).
    add: dict[Path, Any] = field(default_factory=dict)
    #: Set members removed.
    delete: dict[Path, Any] = field(default_factory=dict)
    remove: list[Path] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.set or self.set_if_absent or self.add or self.delete or self.remove)


class ConditionFailed(Exception):
    """A conditional write lost; ``current`` is the item as it was (None when missing)."""

    def __init__(self, current: Item | None, index: int = 0) -> None:
        super().__init__("condition failed")
        self.current = current
        #: In a transaction: which write's condition failed.
        self.index = index


class ItemTooLarge(Exception):
    """A write would pass the table's item size limit; the message names the item."""


@dataclass
class Write:
    """One write of a transaction: ``update`` (or ``put`` a whole item) under ``condition``."""

    key: str
    update: Update | None = None
    put: Item | None = None
    condition: Condition = ()


class ItemStore(Protocol):
    def get_many(self, keys: Sequence[str]) -> dict[str, Item]:
        """Strongly consistent reads; missing keys are absent from the answer."""
        ...

    def put(self, key: str, item: Item, condition: Condition = ()) -> None:
        """Write a whole item; raise ConditionFailed with the current item."""
        ...

    def update(self, key: str, update: Update, condition: Condition = ()) -> Item:
        """Change an item (creating it if missing) and return it as it is after the write."""
        ...

    def transact(self, writes: Sequence[Write]) -> None:
        """All writes or none; raise ConditionFailed naming the write that failed."""
        ...


# ----------------------------------------------------------------------------- evaluation
_MISSING = object()


#: BatchGetItem's limit on keys per request.
GET_BATCH = 100


def get_in_batches(store: ItemStore, keys: Sequence[str]) -> dict[str, Item]:
    """The items found under ``keys``, read ``GET_BATCH`` keys per request."""
    found: dict[str, Item] = {}
    for start in range(0, len(keys), GET_BATCH):
        found.update(store.get_many(list(keys[start : start + GET_BATCH])))
    return found


def get_path(item: Mapping[str, Any] | None, path: Path) -> Any:
    value: Any = item
    for part in path:
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _holds(item: Item | None, cond: Cond) -> bool:
    value = get_path(item, cond.path)
    if cond.op == "exists":
        return value is not _MISSING
    if cond.op == "absent":
        return value is _MISSING
    if value is _MISSING:
        return cond.op == "ne"
    if cond.op == "eq":
        return bool(value == cond.value)
    if cond.op == "ne":
        return bool(value != cond.value)
    if cond.op == "in":
        return value in cond.value
    return bool(value < cond.value)


def holds(item: Item | None, condition: Condition) -> bool:
    return all(any(_holds(item, c) for c in group) for group in condition)


def _parent(item: Item, path: Path) -> dict[str, Any]:
    target: Any = item
    for part in path[:-1]:
        nxt = target.get(part)
        if not isinstance(nxt, dict):
            # DynamoDB refuses a path through a missing map; our writes always create the map
            # in the same or an earlier write, so this is a bug, not bad input.
            raise KeyError(f"no map at {'.'.join(path[:-1])}")
        target = nxt
    return target


def apply_update(item: Item, update: Update) -> None:
    for path, value in update.set.items():
        _parent(item, path)[path[-1]] = copy.deepcopy(value)
    for path, value in update.set_if_absent.items():
        _parent(item, path).setdefault(path[-1], copy.deepcopy(value))
    for path, value in update.add.items():
        parent = _parent(item, path)
        current = parent.get(path[-1])
        if isinstance(value, set | frozenset):
            parent[path[-1]] = set(current or ()) | set(value)
        else:
            parent[path[-1]] = (current or 0) + value
    for path, members in update.delete.items():
        parent = _parent(item, path)
        remaining = set(parent.get(path[-1]) or ()) - set(members)
        if remaining:
            parent[path[-1]] = remaining
        else:
            parent.pop(path[-1], None)  # DynamoDB drops an emptied set
    for path in update.remove:
        try:
            _parent(item, path).pop(path[-1], None)
        except KeyError:
            continue


def item_size(value: Any) -> int:
    """DynamoDB's size of a value (its published rules: names and strings in UTF-8 bytes,
    numbers about one byte per two digits, small overheads for maps and lists)."""
    if value is None or isinstance(value, bool):
        return 1
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, bytes | bytearray):
        return len(value)
    if isinstance(value, int | float | Decimal):
        digits = len(str(value).replace("-", "").replace(".", "").lstrip("0")) or 1
        return (digits + 1) // 2 + 1
    if isinstance(value, Mapping):
        return 3 + sum(len(str(k).encode()) + 1 + item_size(v) for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return 3 + sum(1 + item_size(v) for v in value)
    return len(str(value))


def whole_item_size(item: Mapping[str, Any]) -> int:
    return sum(len(k.encode()) + item_size(v) for k, v in item.items())


# ----------------------------------------------------------------------------- in memory
@dataclass
class InMemoryItemStore:
    """A dict of items with DynamoDB's write rules, counting what each write would cost."""

    max_item_bytes: int = MAX_ITEM_BYTES
    items: dict[str, Item] = field(default_factory=dict)
    #: Write units as DynamoDB bills them (1 per started KB of the larger of before and after;
    #: twice that inside a transaction), and read units (1 per started 4 KB, strong reads).
    write_units: int = 0
    read_units: int = 0
    requests: int = 0
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def get_many(self, keys: Sequence[str]) -> dict[str, Item]:
        with self._lock:
            self.requests += 1
            found: dict[str, Item] = {}
            for key in dict.fromkeys(keys):
                item = self.items.get(key)
                size = whole_item_size(item) if item is not None else 0
                self.read_units += max(1, -(-size // 4096))
                if item is not None:
                    found[key] = copy.deepcopy(item)
            return found

    def put(self, key: str, item: Item, condition: Condition = ()) -> None:
        with self._lock:
            self.requests += 1
            current = self.items.get(key)
            if not holds(current, condition):
                raise ConditionFailed(copy.deepcopy(current))
            self._store(key, copy.deepcopy(item), current)

    def update(self, key: str, update: Update, condition: Condition = ()) -> Item:
        with self._lock:
            self.requests += 1
            current = self.items.get(key)
            if not holds(current, condition):
                raise ConditionFailed(copy.deepcopy(current))
            updated = copy.deepcopy(current) if current is not None else {}
            apply_update(updated, update)
            self._store(key, updated, current)
            return copy.deepcopy(updated)

    def transact(self, writes: Sequence[Write]) -> None:
        with self._lock:
            self.requests += 1
            staged: list[tuple[str, Item, Item | None]] = []
            for index, write in enumerate(writes):
                current = self.items.get(write.key)
                if not holds(current, write.condition):
                    raise ConditionFailed(copy.deepcopy(current), index)
                if write.put is not None:
                    updated = copy.deepcopy(write.put)
                else:
                    updated = copy.deepcopy(current) if current is not None else {}
                    apply_update(updated, write.update or Update())
                self._check(write.key, updated)
                staged.append((write.key, updated, current))
            for key, updated, current in staged:
                self._store(key, updated, current, factor=2)

    def _check(self, key: str, item: Item) -> int:
        size = whole_item_size(item) + len(key)
        if size > self.max_item_bytes:
            raise ItemTooLarge(f"item {key!r} would be {size} bytes")
        return size

    def _store(self, key: str, item: Item, before: Item | None, factor: int = 1) -> None:
        size = self._check(key, item)
        previous = whole_item_size(before) + len(key) if before is not None else 0
        self.write_units += factor * max(1, -(-max(size, previous) // 1024))
        self.items[key] = item
