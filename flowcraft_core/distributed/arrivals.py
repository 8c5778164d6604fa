"""Join arrivals and loop passes: the small items advancing is made of.

Every write here is a number-set addition or a create-if-absent, so a repeated arrival counts
once and a redelivered job or the reconciler may advance the same instance again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .items import ItemStore, Update, get_in_batches
from .layout import join_key, loop_exits_key, loop_iteration_key

if TYPE_CHECKING:
    from .state import Retention


@dataclass(frozen=True)
class Arrival:
    """A join's state after one arrival."""

    complete: bool
    any_taken: bool
    #: For ``any`` joins: the position of the first taken arrival (the one that fires it).
    owner: int | None
    arrived: frozenset[int] = frozenset()
    taken: frozenset[int] = frozenset()


class ArrivalItems:
    """Records arrivals at joins and the passes of loops, each in its own small item."""

    def __init__(self, items: ItemStore, retention: Retention) -> None:
        self.items = items
        self.retention = retention

    def arrive(
        self,
        run_id: str,
        target: str,
        position: int,
        size: int,
        taken: bool,
        *,
        claim: bool,
        now: float,
        bucket_size: int,
    ) -> Arrival:
        """Record that incoming edge ``position`` (of ``size``) of ``target`` was decided.

        Number-set additions make a repeated arrival count once. A join wider than
        ``bucket_size`` counts its arrivals in buckets and the full buckets in a top item, so
        every write stays small. ``claim`` (``any`` joins) names the first taken arrival the
        owner, in the top item.
        """
        ttl = self.retention.running(now)
        if size <= bucket_size:
            update = Update(add={("a",): {position}}, set={("ttl",): ttl})
            if taken:
                update.add[("tk",)] = {position}
                if claim:
                    update.set_if_absent[("f",)] = position
            item = self.items.update(join_key(run_id, target), update)
            return _arrival(item, size)
        bucket, offset = divmod(position, bucket_size)
        buckets = -(-size // bucket_size)
        bucket_len = min(bucket_size, size - bucket * bucket_size)
        update = Update(add={("a",): {offset}}, set={("ttl",): ttl})
        if taken:
            update.add[("tk",)] = {offset}
        item = self.items.update(join_key(run_id, target, bucket), update)
        done = _arrival(item, bucket_len)
        owner: int | None = None
        top_update = Update(set={("ttl",): ttl})
        if taken and claim:
            top_update.set_if_absent[("f",)] = position
        if done.complete:
            top_update.add[("a",)] = {bucket}
            if done.any_taken:
                top_update.add[("tk",)] = {bucket}
        if len(top_update.set) == 1 and not top_update.set_if_absent and not top_update.add:
            return Arrival(complete=False, any_taken=taken, owner=None)
        top = self.items.update(join_key(run_id, target), top_update)
        owner = int(top["f"]) if top.get("f") is not None else None
        whole = _arrival(top, buckets)
        return Arrival(complete=whole.complete, any_taken=whole.any_taken, owner=owner)

    def settle_member(
        self, run_id: str, loop: int, iteration: int, position: int, size: int, now: float
    ) -> bool:
        """A loop member of ``iteration`` settled; True once every member has."""
        item = self.items.update(
            loop_iteration_key(run_id, loop, iteration),
            Update(add={("a",): {position}}, set={("ttl",): self.retention.running(now)}),
        )
        return len(item.get("a") or ()) >= size

    def record_exit(
        self, run_id: str, loop: int, edge_index: int, iteration: int, now: float
    ) -> int:
        """A loop exit was taken in ``iteration``; returns the iteration that took it first."""
        item = self.items.update(
            loop_exits_key(run_id, loop),
            Update(
                set={("ttl",): self.retention.running(now)},
                set_if_absent={("x",): {}},
            ),
        )
        if str(edge_index) not in (item.get("x") or {}):
            item = self.items.update(
                loop_exits_key(run_id, loop),
                Update(set_if_absent={("x", str(edge_index)): iteration}),
            )
        return int(item["x"][str(edge_index)])

    def end_loop(self, run_id: str, loop: int, iteration: int, now: float) -> dict[str, int]:
        """Mark the loop ended (after ``iteration``); returns the exits it took."""
        item = self.items.update(
            loop_exits_key(run_id, loop),
            Update(
                set={("ttl",): self.retention.running(now)},
                set_if_absent={("end",): iteration, ("x",): {}},
            ),
        )
        return {k: int(v) for k, v in (item.get("x") or {}).items()}

    def loop_end(self, run_id: str, loop: int) -> int | None:
        """The last pass of a loop that ended; None while it goes on."""
        item = self.items.get_many([loop_exits_key(run_id, loop)]).get(loop_exits_key(run_id, loop))
        return int(item["end"]) if item and item.get("end") is not None else None

    def passes_settled(self, run_id: str, loop: int, last: int, members: int) -> bool:
        """Whether every member of passes 0..``last`` has settled."""
        keys = [loop_iteration_key(run_id, loop, i) for i in range(last + 1)]
        found = get_in_batches(self.items, keys)
        return all(len((found.get(k) or {}).get("a") or ()) >= members for k in keys)


def _arrival(item: Mapping[str, Any], size: int) -> Arrival:
    arrived = frozenset(int(v) for v in item.get("a") or ())
    taken = frozenset(int(v) for v in item.get("tk") or ())
    owner = item.get("f")
    return Arrival(
        complete=len(arrived) >= size,
        any_taken=bool(taken),
        owner=int(owner) if owner is not None else None,
        arrived=arrived,
        taken=taken,
    )
