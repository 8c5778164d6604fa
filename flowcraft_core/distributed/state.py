"""Reads and writes of a run's items: every condition that keeps the invariants is here.

A node commits with one conditional write to its own item (its output, action, attempts and
edge decisions), and only when it wrote context does the head join it in a transaction. The
write's condition (the node has not settled) makes the commit happen at most once; a lost
condition answers with the committed record so the caller continues from it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..scheduler import split_key
from ..status import AWAITING, CANCELLED, COMPLETED, FAILED, SKIPPED
from .arrivals import ArrivalItems
from .errors import CommitRejected, StateTooLarge
from .items import (
    Cond,
    ConditionFailed,
    Item,
    ItemStore,
    ItemTooLarge,
    Update,
    Write,
    get_in_batches,
)
from .layout import (
    encode_decisions,
    head_key,
    node_key,
)
from .payloads import ValueCodec
from .records import (
    PARKED,
    RETRYING,
    RUNNING,
    SLEEPING,
    WAITING,
    NodeRecord,
    PendingResume,
    PendingRetry,
    RunHead,
)

#: The pseudo-instance whose item holds a start context's large values.
START_VALUES = "$start"
#: Context values whose stored form is at most this stay in the head; larger ones stay in the
#: item of the node that wrote them, and the head points there (the head stays small).
HEAD_VALUE_BYTES = 1024
DAY = 86_400.0


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
        retry=(PendingRetry.from_item(item["rt"]) if item.get("rt") else None),
        wake=float(item["tm"]) if item.get("tm") is not None else None,
        resume=(
            PendingResume(item["r"].get("action"), item["r"].get("output"))
            if item.get("r")
            else None
        ),
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
    """A run's items: its head, its node instances and their conditional writes."""

    def __init__(
        self, items: ItemStore, codec: ValueCodec, retention: Retention | None = None
    ) -> None:
        self.items = items
        self.codec = codec
        self.retention = retention or Retention()
        #: Join arrivals and loop passes (what advancing writes).
        self.arrivals = ArrivalItems(items, self.retention)

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
        named = {node_key(run_id, i): i for i in instances}
        found = get_in_batches(self.items, list(named))
        return {named[key]: node_from_item(item, named[key]) for key, item in found.items()}

    def raw(self, keys: Sequence[str]) -> dict[str, Item]:
        return get_in_batches(self.items, keys)

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
        if to in (COMPLETED, FAILED, CANCELLED):
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
                run_id, to=FAILED, allowed_from=[RUNNING, AWAITING], now=now, error=message
            )
        head_update = Update(
            set={
                ("status",): FAILED,
                ("updatedAt",): now,
                ("error",): message[:4000],
                ("ttl",): self.retention.finished(now),
            }
        )
        node_update = Update(
            set={
                ("s",): FAILED,
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

    def add_wait(self, run_id: str, key: str) -> None:
        """List ``key`` among the run's waiting instances (a resume takes it off again)."""
        update = Update(add={("waits",): {key}})
        with contextlib.suppress(ConditionFailed):  # the run's head is gone
            self.items.update(head_key(run_id), update, ((Cond(("runId",), "exists"),),))

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
            ("s",): COMPLETED,
            ("n",): attempts,
            ("t",): now,
            ("o",): envelope,
            ("ttl",): self.retention.running(now),
        }
        if action is not None:
            node[("a",)] = action
        for name, value in encode_decisions(dict(decisions)).items():
            node[(name,)] = value
        head, written = self._context_writes(run_id, key, where, context_set, context_delete)
        if written:
            node[("w",)] = written
        update = Update(set=node, remove=[("rt",), ("tm",), ("r",), ("c",)])
        condition = _commit_condition(replace_attempt)
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
            raise self._rejected(failed, run_id, key) from None
        except ItemTooLarge as exc:
            raise StateTooLarge(str(exc)) from None
        written_item = {path[0]: value for path, value in node.items()}
        return node_from_item(written_item, key)

    def _context_writes(
        self,
        run_id: str,
        key: str,
        where: str,
        context_set: Mapping[str, Any],
        context_delete: Iterable[str],
    ) -> tuple[Update, dict[str, Any]]:
        """A node's context writes: the head's update, and the large values that stay in the
        node's own item (the head points there, so it stays small)."""
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
        return head, written

    def _rejected(self, failed: ConditionFailed, run_id: str, key: str) -> CommitRejected:
        """Why a commit's condition failed: the run closed, or the node settled or parked
        meanwhile (with its current record)."""
        if failed.index == 1:
            return CommitRejected("closed", None)
        current = failed.current
        if current is None:
            current = self.items.get_many([node_key(run_id, key)]).get(node_key(run_id, key))
        record = node_from_item(current, key) if current else None
        reason = "committed" if record is not None and record.settled else "parked"
        return CommitRejected(reason, record)

    def skip(self, run_id: str, key: str, decisions: Mapping[int, bool], now: float) -> None:
        """Record a skipped instance (idempotent: an existing record stays)."""
        item: Item = {
            "runId": node_key(run_id, key),
            "s": SKIPPED,
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
        retry: PendingRetry | None = None,
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
            update.set[("rt",)] = retry.to_item()
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

    def resume(
        self,
        run_id: str,
        key: str,
        *,
        action: str | None,
        output: Any,
        allowed: Sequence[str],
        now: float,
    ) -> bool:
        """Attach a resume to an awaiting instance once and set the run running, in one
        transaction; False when the instance is not awaiting or has a resume already, or the
        run's status is not in ``allowed``."""
        stored = {
            "action": action,
            "output": self.codec.encode(
                output, run_id=run_id, name=f"{key}-resume", where="resume output"
            ),
        }
        try:
            self.items.transact(
                [
                    Write(
                        node_key(run_id, key),
                        Update(set={("r",): stored}),
                        condition=((Cond(("s",), "eq", AWAITING),), (Cond(("r",), "absent"),)),
                    ),
                    _running_again(run_id, key, allowed, now),
                ]
            )
        except ConditionFailed:
            return False
        return True

    def resume_through_child(
        self, run_id: str, key: str, *, allowed: Sequence[str], now: float
    ) -> bool:
        """A subflow node whose child waits: the node goes back to waiting on its child and
        the run runs again, in one transaction (the child is resumed next); False as
        ``resume``."""
        try:
            self.items.transact(
                [
                    Write(
                        node_key(run_id, key),
                        Update(set={("s",): WAITING}),
                        condition=((Cond(("s",), "eq", AWAITING),),),
                    ),
                    _running_again(run_id, key, allowed, now),
                ]
            )
        except ConditionFailed:
            return False
        return True


def _running_again(run_id: str, key: str, allowed: Sequence[str], now: float) -> Write:
    """The head's half of a resume: running again, ``key`` no longer waited on."""
    return Write(
        head_key(run_id),
        Update(set={("status",): RUNNING, ("updatedAt",): now}, delete={("waits",): {key}}),
        condition=((Cond(("status",), "in", tuple(allowed)),),),
    )


def _commit_condition(replace_attempt: int | None) -> Sequence[Sequence[Cond]]:
    """A commit happens once: while the instance has not settled, or, replacing a subflow
    attempt, while it still waits on that attempt's child."""
    if replace_attempt is None:
        return _NOT_SETTLED
    return ((Cond(("s",), "eq", WAITING),), (Cond(("n",), "eq", replace_attempt),))
