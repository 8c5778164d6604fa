"""Reads and writes of a run's items: every condition that keeps the invariants is here.

A node commits with one conditional write to its own item (its output, action, attempts and
edge decisions), and only when it wrote context does the head join it in a transaction. The
write's condition (the node has not settled) makes the commit happen at most once; a lost
condition answers with the committed record so the caller continues from it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..scheduler import split_key
from ..status import AWAITING
from .errors import CommitRejected, StateTooLarge
from .items import Cond, ConditionFailed, Item, ItemStore, ItemTooLarge, Update, Write
from .layout import (
    encode_decisions,
    head_key,
    join_key,
    loop_exits_key,
    loop_iteration_key,
    node_key,
)
from .payloads import ValueCodec
from .records import PARKED, RETRYING, RUNNING, SLEEPING, WAITING, NodeRecord, RunHead

#: The pseudo-instance whose item holds a start context's large values.
START_VALUES = "$start"
#: Context values whose stored form is at most this stay in the head; larger ones stay in the
#: item of the node that wrote them, and the head points there (the head stays small).
HEAD_VALUE_BYTES = 1024
DAY = 86_400.0


@dataclass(frozen=True)
class Arrival:
    """A join's state after one arrival."""

    complete: bool
    any_taken: bool
    #: For ``any`` joins: the position of the first taken arrival (the one that fires it).
    owner: int | None
    arrived: frozenset[int] = frozenset()
    taken: frozenset[int] = frozenset()


@dataclass
class Retention:
    """Every item a run writes carries ``ttl``: finished runs expire ``retention`` after they
    end; items written while a run is under way, ``retention + horizon`` after their write."""

    retention_days: float = 30
    horizon_days: float = 30

    def running(self, now: float) -> int:
        return int(now + (self.retention_days + self.horizon_days) * DAY)

    def finished(self, now: float) -> int:
        return int(now + self.retention_days * DAY)


_NOT_SETTLED: tuple[tuple[Cond, ...], ...] = (
    (Cond(("s",), "absent"), Cond(("s",), "in", tuple(PARKED))),
)
_RUNNING_HEAD = ((Cond(("status",), "eq", RUNNING),),)


def node_from_item(item: Mapping[str, Any], instance: str) -> NodeRecord:
    _, iteration = split_key(instance)
    return NodeRecord(
        status=str(item.get("s", RUNNING)),
        action=item.get("a"),
        attempts=int(item.get("n", 1)),
        error=item.get("e"),
        finished_at=float(item["t"]) if item.get("t") is not None else None,
        stored_decisions=(str(item.get("dt") or ""), str(item.get("dn") or ""), iteration),
        retry=(
            {"attempt": int(item["rt"]["attempt"]), "notBefore": float(item["rt"]["notBefore"])}
            if item.get("rt")
            else None
        ),
        wake=float(item["tm"]) if item.get("tm") is not None else None,
        resume=item.get("r"),
        child=item.get("c"),
        stored=item.get("o"),
    )


def head_from_item(item: Mapping[str, Any]) -> RunHead:
    return RunHead(
        run_id=str(item["runId"]),
        blueprint_id=str(item["bp"]),
        status=str(item.get("status", RUNNING)),
        context=dict(item.get("ctx") or {}),
        created_at=float(item.get("createdAt", 0)),
        updated_at=float(item.get("updatedAt", 0)),
        error=item.get("error"),
        parent=item.get("parent"),
        waits={str(k) for k in item.get("waits") or ()},
    )


@dataclass
class JobRead:
    """What one consistent read returned for a job."""

    head: RunHead | None
    nodes: dict[str, NodeRecord] = field(default_factory=dict)
    raw: dict[str, Item] = field(default_factory=dict)


class RunItems:
    def __init__(
        self, items: ItemStore, codec: ValueCodec, retention: Retention | None = None
    ) -> None:
        self.items = items
        self.codec = codec
        self.retention = retention or Retention()

    # ------------------------------------------------------------------ reads
    def read(
        self, run_id: str, instances: Iterable[str] = (), extra: Iterable[str] = ()
    ) -> JobRead:
        """The head, node instances and any other items of a run, in one consistent read."""
        wanted = {node_key(run_id, i): i for i in instances}
        keys = [head_key(run_id), *wanted, *extra]
        found = self.items.get_many(keys)
        head_item = found.get(head_key(run_id))
        return JobRead(
            head=head_from_item(head_item) if head_item else None,
            nodes={i: node_from_item(found[k], i) for k, i in wanted.items() if k in found},
            raw=found,
        )

    def nodes(self, run_id: str, instances: Sequence[str]) -> dict[str, NodeRecord]:
        found: dict[str, NodeRecord] = {}
        for start in range(0, len(instances), 100):
            chunk = {node_key(run_id, i): i for i in instances[start : start + 100]}
            for key, item in self.items.get_many(list(chunk)).items():
                found[chunk[key]] = node_from_item(item, chunk[key])
        return found

    def raw(self, keys: Sequence[str]) -> dict[str, Item]:
        found: dict[str, Item] = {}
        for start in range(0, len(keys), 100):
            found.update(self.items.get_many(list(keys[start : start + 100])))
        return found

    def head(self, run_id: str) -> RunHead | None:
        return self.read(run_id).head

    def context_value(self, run_id: str, key: str, stored: Any) -> Any:
        """Decode a head context entry (following a reference to the writer's item)."""
        if isinstance(stored, Mapping) and "at" in stored:
            writer = str(stored["at"])
            item = self.items.get_many([node_key(run_id, writer)]).get(node_key(run_id, writer))
            written = ((item or {}).get("w") or {}).get(key)
            return self.codec.decode(written)
        return self.codec.decode(stored)

    # ------------------------------------------------------------------ the head
    def create(self, head: RunHead, context: Mapping[str, Any], now: float) -> bool:
        """Store a new run; False when the run id exists already.

        Context values larger than the head keeps inline go to an item of their own first (the
        head points there), so every node's read of the head stays small whatever the start
        context holds.
        """
        ctx: dict[str, Any] = {}
        spilled: dict[str, Any] = {}
        for k, v in context.items():
            stored = self.codec.encode(
                v, run_id=head.run_id, name=f"context-{k}", where=f"context.{k}"
            )
            if ValueCodec.stored_size(stored) <= HEAD_VALUE_BYTES:
                ctx[k] = stored
            else:
                spilled[k] = stored
                ctx[k] = {"at": START_VALUES}
        if spilled:
            holder = node_key(head.run_id, START_VALUES)
            try:
                # A repeated start of the same run id never replaces the first start's values.
                self.items.put(
                    holder,
                    {"runId": holder, "w": spilled, "ttl": self.retention.running(now)},
                    ((Cond(("runId",), "absent"),),),
                )
            except ConditionFailed:
                pass
            except ItemTooLarge as exc:
                raise StateTooLarge(f"the initial context is too large: {exc}") from None
        item: Item = {
            "runId": head.run_id,
            "bp": head.blueprint_id,
            "status": head.status,
            "ctx": ctx,
            "createdAt": head.created_at,
            "updatedAt": head.updated_at,
            "ttl": self.retention.running(now),
        }
        if head.parent is not None:
            item["parent"] = head.parent
        try:
            self.items.put(head.run_id, item, ((Cond(("runId",), "absent"),),))
        except ConditionFailed:
            return False
        except ItemTooLarge as exc:
            message = f"the initial context is too large for the run's head: {exc}"
            raise StateTooLarge(message) from None
        return True

    def transition(
        self,
        run_id: str,
        *,
        to: str,
        allowed_from: Iterable[str],
        now: float,
        error: str | None = None,
        waits: Iterable[str] = (),
    ) -> RunHead | None:
        """Change the run status if it is one of ``allowed_from``; None when it is not.
        ``waits`` are instances parked awaiting (recorded with the status, so a resume finds
        them even if the write that parked them died before listing them)."""
        update = Update(set={("status",): to, ("updatedAt",): now})
        if waits:
            update.add[("waits",)] = set(waits)
        if error is not None:
            update.set[("error",)] = error[:4000]
        if to in ("completed", "failed", "cancelled"):
            update.set[("ttl",)] = self.retention.finished(now)
        condition = ((Cond(("status",), "in", tuple(allowed_from)),),)
        try:
            return head_from_item(self.items.update(head_key(run_id), update, condition))
        except ConditionFailed:
            return None

    def fail(
        self,
        run_id: str,
        message: str,
        now: float,
        *,
        key: str | None = None,
        attempts: int = 1,
    ) -> RunHead | None:
        """Fail the run (and record the failed node, unless a concurrent delivery committed it
        meanwhile: a committed node wins over a failed attempt). None when nothing changed."""
        if key is None:
            return self.transition(
                run_id, to="failed", allowed_from=[RUNNING, AWAITING], now=now, error=message
            )
        head_update = Update(
            set={
                ("status",): "failed",
                ("updatedAt",): now,
                ("error",): message[:4000],
                ("ttl",): self.retention.finished(now),
            }
        )
        node_update = Update(
            set={
                ("s",): "failed",
                ("n",): attempts,
                ("e",): message[:4000],
                ("t",): now,
                ("ttl",): self.retention.finished(now),
            },
            remove=[("rt",), ("tm",)],
        )
        try:
            self.items.transact(
                [
                    Write(
                        head_key(run_id),
                        head_update,
                        condition=((Cond(("status",), "in", (RUNNING, AWAITING)),),),
                    ),
                    Write(node_key(run_id, key), node_update, condition=_NOT_SETTLED),
                ]
            )
        except ConditionFailed:
            return None
        return self.head(run_id)

    def set_waits(self, run_id: str, add: str | None = None, remove: str | None = None) -> None:
        update = Update()
        if add is not None:
            update.add[("waits",)] = {add}
        if remove is not None:
            update.delete[("waits",)] = {remove}
        if update:
            try:
                self.items.update(head_key(run_id), update, ((Cond(("runId",), "exists"),),))
            except ConditionFailed:
                return

    def touch(self, run_id: str, now: float) -> None:
        """Mark the run as making progress (throttled by the caller)."""
        try:
            self.items.update(head_key(run_id), Update(set={("updatedAt",): now}), _RUNNING_HEAD)
        except ConditionFailed:
            return

    # ------------------------------------------------------------------ node instances
    def commit(
        self,
        run_id: str,
        key: str,
        *,
        output: Any,
        action: str | None,
        attempts: int,
        decisions: Mapping[int, bool],
        context_set: Mapping[str, Any],
        context_delete: Iterable[str],
        now: float,
        where: str,
        replace_attempt: int | None = None,
    ) -> NodeRecord:
        """Commit a completed node once (returning its record); raise CommitRejected with the
        current record.

        A completed node replaces a parked record (awaiting, waiting, retrying, sleeping) and
        with it its pending resume, retry and timer.
        """
        envelope = self.codec.encode(output, run_id=run_id, name=key, where=f"{where}: output")
        node: dict[tuple[str, ...], Any] = {
            ("s",): "completed",
            ("n",): attempts,
            ("t",): now,
            ("o",): envelope,
            ("ttl",): self.retention.running(now),
        }
        if action is not None:
            node[("a",)] = action
        for name, value in encode_decisions(dict(decisions)).items():
            node[(name,)] = value
        head = Update()
        written: dict[str, Any] = {}
        for ckey, value in context_set.items():
            stored = self.codec.encode(
                value, run_id=run_id, name=f"{key}-context-{ckey}", where=f"{where}: context.{ckey}"
            )
            if ValueCodec.stored_size(stored) <= HEAD_VALUE_BYTES:
                head.set[("ctx", ckey)] = stored
            else:
                written[ckey] = stored
                head.set[("ctx", ckey)] = {"at": key}
        for ckey in context_delete:
            if ckey not in context_set:
                head.remove.append(("ctx", ckey))
        if written:
            node[("w",)] = written
        update = Update(set=node, remove=[("rt",), ("tm",), ("r",), ("c",)])
        if replace_attempt is not None:
            condition: Sequence[Sequence[Cond]] = (
                (Cond(("s",), "eq", WAITING),),
                (Cond(("n",), "eq", replace_attempt),),
            )
        else:
            condition = _NOT_SETTLED
        try:
            if head:
                head.set[("updatedAt",)] = now
                self.items.transact(
                    [
                        Write(node_key(run_id, key), update, condition=condition),
                        Write(head_key(run_id), head, condition=_RUNNING_HEAD),
                    ]
                )
            else:
                self.items.update(node_key(run_id, key), update, condition)
        except ConditionFailed as failed:
            if failed.index == 1:
                raise CommitRejected("closed", None) from None
            current = failed.current
            if current is None:
                current = self.items.get_many([node_key(run_id, key)]).get(node_key(run_id, key))
            record = node_from_item(current, key) if current else None
            reason = "committed" if record is not None and record.settled else "parked"
            raise CommitRejected(reason, record) from None
        except ItemTooLarge as exc:
            raise StateTooLarge(str(exc)) from None
        written_item = {path[0]: value for path, value in node.items()}
        return node_from_item(written_item, key)

    def skip(self, run_id: str, key: str, decisions: Mapping[int, bool], now: float) -> None:
        """Record a skipped instance (idempotent: an existing record stays)."""
        item: Item = {
            "runId": node_key(run_id, key),
            "s": "skipped",
            "t": now,
            "ttl": self.retention.running(now),
            **encode_decisions(dict(decisions)),
        }
        try:
            self.items.put(node_key(run_id, key), item, ((Cond(("s",), "absent"),),))
        except ConditionFailed:
            return

    def park(
        self,
        run_id: str,
        key: str,
        *,
        status: str,
        now: float,
        attempts: int | None = None,
        retry: Mapping[str, float] | None = None,
        wake: float | None = None,
        child: str | None = None,
        replace_attempt: int | None = None,
        output: Any = None,
    ) -> NodeRecord:
        """Park an instance that has not settled (a wait, a child run, a retry, a sleep).

        A sleep's wake time is recorded once (duplicates agree on it). Raises CommitRejected
        with the current record when the instance settled meanwhile (or, for ``awaiting``,
        when it is parked already).
        """
        update = Update(set={("s",): status, ("ttl",): self.retention.running(now)})
        if attempts is not None:
            update.set[("n",)] = attempts
        if retry is not None:
            update.set[("rt",)] = dict(retry)
        if wake is not None:
            update.set_if_absent[("tm",)] = wake
        if child is not None:
            update.set[("c",)] = child
        if output is not None:  # what a parked node shows (a webhook's endpoint)
            update.set[("o",)] = self.codec.encode(
                output, run_id=run_id, name=f"{key}-parked", where=f"node {key!r}: output"
            )
        if replace_attempt is not None:
            condition: Sequence[Sequence[Cond]] = (
                (Cond(("s",), "eq", WAITING),),
                (Cond(("n",), "eq", replace_attempt),),
            )
        elif status == AWAITING:
            condition = (
                (Cond(("s",), "absent"), Cond(("s",), "in", (RETRYING, SLEEPING, WAITING))),
            )
        else:
            condition = _NOT_SETTLED
        try:
            return node_from_item(self.items.update(node_key(run_id, key), update, condition), key)
        except ConditionFailed as failed:
            record = node_from_item(failed.current, key) if failed.current else None
            reason = "committed" if record is not None and record.settled else "parked"
            raise CommitRejected(reason, record) from None

    def resume(self, run_id: str, key: str, payload: Mapping[str, Any], now: float) -> bool:
        """Attach a resume to an awaiting instance once; False if it is not awaiting or has one."""
        stored = {
            "action": payload.get("action"),
            "output": self.codec.encode(
                payload.get("output"), run_id=run_id, name=f"{key}-resume", where="resume output"
            ),
        }
        try:
            self.items.update(
                node_key(run_id, key),
                Update(set={("r",): stored}),
                ((Cond(("s",), "eq", AWAITING),), (Cond(("r",), "absent"),)),
            )
        except ConditionFailed:
            return False
        return True

    # ------------------------------------------------------------------ arrivals
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

    def join_state(self, run_id: str, target: str) -> Item | None:
        return self.items.get_many([join_key(run_id, target)]).get(join_key(run_id, target))

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
        found = self.raw(keys)
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
