"""Maps fanned out over the queue: items run in ``concurrency`` lanes, results gathered in order.

Items are stored once in chunks that carry the map's spec; each item is an instance of its
own (``<map>[<index>]``). Why lanes and chunks: docs/design.md, section 3, "Maps".
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..blueprint import NodeDefinition
from ..builtins.map import MapSpec, blueprint_item_output, item_context, map_item_instance
from ..context import BufferedContext
from ..engine import attempt_once, describe_error, handle_failure
from ..nodes import NodeContext, NodeResult, ResolvedNode, resolve
from ..scheduler import split_key
from .errors import CommitRejected, PoisonJob, StateTooLarge
from .execution import FanOut, JobState, StartChild, Suspend
from .items import Cond, ConditionFailed
from .job import Job
from .layout import fanout_key, map_join_target
from .payloads import PayloadsUnavailable, ValueTooLarge
from .plan import Plan
from .records import COMPLETED, RUNNING, FanoutRecord

if TYPE_CHECKING:
    from .worker import Worker

#: Items per stored chunk.
CHUNK = 100


def chunk_key(run_id: str, instance: str, digest: str, chunk: int) -> str:
    return f"{fanout_key(run_id, instance)}#{digest}#c{chunk}"


@dataclass(frozen=True)
class _ItemJob:
    """A map item's job once its run and the map's record (or chunk) are read."""

    state: JobState
    index: int
    #: The item's own instance (``<map>[<index>]``).
    name: str
    #: The map's record, as its fan-out item or the item's chunk carries it.
    fan: FanoutRecord

    @property
    def node_id(self) -> str:
        return split_key(self.state.key)[0]

    @property
    def count(self) -> int:
        return self.fan.count

    @property
    def digest(self) -> str:
        return self.fan.digest


@dataclass(frozen=True)
class _Produced:
    """An item's output, as opposed to the job that follows an item that did not finish."""

    output: Any


class Fanout:
    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    # ------------------------------------------------------------------ the map node
    def start(self, state: JobState, spec: MapSpec, node_input: Any) -> Job | None:
        """Store the map's items once, then send the first ``concurrency`` item jobs."""
        worker = self.worker
        key, run_id = state.key, state.run_id
        if not spec.items:
            context = worker.inputs.context_of(state)
            return worker.commits.commit(
                state, NodeResult(output=[]), node_input, BufferedContext(context), 1
            )
        store = worker.runs.items
        now = worker.clock.now()
        stored = store.get_many([fanout_key(run_id, key)]).get(fanout_key(run_id, key))
        existing = FanoutRecord.from_item(stored) if stored is not None else None
        if existing is None:
            text = json.dumps(spec.items, separators=(",", ":"), sort_keys=True, default=str)
            digest = hashlib.sha256(text.encode()).hexdigest()[:16]
            node_id = split_key(key)[0]
            ttl = worker.runs.retention.running(now)
            described = {k: v for k, v in spec.to_dict().items() if k != "items"}
            fresh = FanoutRecord(count=len(spec.items), digest=digest, spec=described)
            shared = {**fresh.to_item(), "ttl": ttl}
            for chunk in range(-(-len(spec.items) // CHUNK)):
                values = spec.items[chunk * CHUNK : (chunk + 1) * CHUNK]
                envelope = worker.codec.encode(
                    values,
                    run_id=run_id,
                    name=f"{key}-items-{chunk}",
                    where=f"node {node_id!r}: map items {chunk * CHUNK}-",
                )
                item_key = chunk_key(run_id, key, digest, chunk)
                with contextlib.suppress(ConditionFailed):
                    store.put(
                        item_key,
                        # Each chunk carries the spec: an item's job reads one item for both.
                        {"runId": item_key, "v": envelope, **shared},
                        ((Cond(("runId",), "absent"),),),
                    )
            record: dict[str, Any] = {"runId": fanout_key(run_id, key), **shared}
            try:
                store.put(fanout_key(run_id, key), record, ((Cond(("runId",), "absent"),),))
                existing = fresh
                pending = list(range(len(spec.items)))
            except ConditionFailed as lost:
                existing = FanoutRecord.from_item(lost.current) if lost.current else fresh
                pending = self.pending(run_id, key, existing.count)
        else:
            pending = self.pending(run_id, key, existing.count)
        if not pending:  # every item is in, but the map's own commit never happened
            return self.gather(state.plan, state.head.run_id, key, existing.count)
        for index in pending[: existing.map_spec().concurrency]:
            self.send_item(state.plan, run_id, key, index, existing.digest)
        return None

    def pending(self, run_id: str, key: str, count: int) -> list[int]:
        """Indices without a committed result (reads every item: redeliveries only)."""
        names = [map_item_instance(key, i) for i in range(count)]
        records = self.worker.runs.nodes(run_id, names)
        return [
            i
            for i, name in enumerate(names)
            if name not in records or records[name].status != COMPLETED
        ]

    def send_item(self, plan: Plan, run_id: str, key: str, index: int, digest: str) -> None:
        job = Job(run_id=run_id, blueprint_id=plan.graph.id, node_id=key, item=index, items=digest)
        self.worker.send([job])

    # ------------------------------------------------------------------ one item
    async def run_item(
        self, plan: Plan, job: Job, remaining_ms: Callable[[], int] | None = None
    ) -> None:
        """Run a lane of items: each finished item is followed, in this invocation, by the one
        ``concurrency`` places after it (saving its queue hop), up to the worker's chain limit
        or time reserve; then the lane's next item goes back on the queue."""
        # A lane's items share chunks: each chunk is read and decoded once per invocation.
        chunks: dict[str, tuple[FanoutRecord, list[Any]]] = {}
        await self.worker.chain(job, lambda item: self._run_one(plan, item, chunks), remaining_ms)

    async def _run_one(
        self, plan: Plan, job: Job, chunks: dict[str, tuple[FanoutRecord, list[Any]]]
    ) -> Job | None:
        """One item: run it, commit its result, count it; returns the lane's next item."""
        item = self._read_item(plan, job, chunks)
        if item is None:
            return None
        own = item.state.own
        if own is not None and own.status == COMPLETED:
            return self._arrived(plan, item)
        if own is not None and own.retry is not None and job.attempt < own.retry.attempt:
            return None
        if not await self.worker.parking.until_due(job):
            return None
        values = self._chunk_values(item, chunks)
        if values is None:
            self.worker.fail_run(
                item.state.head, f"node {item.node_id!r}: the map's items are missing"
            )
            return None
        produced = await self._attempt_item(plan, item, values[item.index % CHUNK])
        if not isinstance(produced, _Produced):
            return produced
        return self._commit_item(plan, item, produced.output)

    def _read_item(
        self, plan: Plan, job: Job, chunks: Mapping[str, tuple[FanoutRecord, list[Any]]]
    ) -> _ItemJob | None:
        """The item's run and the map's record, in one read; ``None`` when nothing is to run
        (the run is closed or not running, or the job names an item the map does not have)."""
        worker, key, index = self.worker, job.node_id, job.item
        assert index is not None
        name = map_item_instance(key, index)
        # The item's chunk (which carries the map's spec) comes with the first read, unless
        # this invocation has it already; a job sent without the chunk's digest (a recovery)
        # reads the fan-out record instead.
        where = (
            chunk_key(job.run_id, key, job.items, index // CHUNK)
            if job.items is not None
            else fanout_key(job.run_id, key)
        )
        held = chunks.get(where)
        read = worker.runs.read(job.run_id, [name], [] if held is not None else [where])
        head = read.head
        if head is None:
            raise PoisonJob(f"job names run {job.run_id!r}, which does not exist")
        if head.final or head.status != RUNNING:
            return None
        state = JobState(job=job, plan=plan, head=head, own=read.nodes.get(name), read=read)
        stored = read.raw.get(where)
        fan = held[0] if held is not None else None
        if fan is None and stored is not None:
            fan = FanoutRecord.from_item(stored)
        if fan is None or index >= fan.count:
            node_id = split_key(key)[0]
            worker.fail_run(head, f"node {node_id!r}: job names unknown item {index}")
            return None
        return _ItemJob(state=state, index=index, name=name, fan=fan)

    def _chunk_values(
        self, item: _ItemJob, chunks: dict[str, tuple[FanoutRecord, list[Any]]]
    ) -> list[Any] | None:
        """The stored items of the chunk that holds this one (decoded once per invocation)."""
        runs, run_id = self.worker.runs, item.state.run_id
        chunk_name = chunk_key(run_id, item.state.key, item.digest, item.index // CHUNK)
        if chunk_name in chunks:
            return chunks[chunk_name][1]
        raw = item.state.read.raw if item.state.read is not None else {}
        chunk = raw.get(chunk_name) or runs.items.get_many([chunk_name]).get(chunk_name)
        values = runs.codec.decode(chunk["v"]) if chunk else None
        if not isinstance(values, list):
            return None
        chunks[chunk_name] = (item.fan, values)
        return values

    async def _attempt_item(self, plan: Plan, item: _ItemJob, value: Any) -> _Produced | Job | None:
        """One attempt at the item, with the attempt policy after a failure; its output, or
        the job that follows instead."""
        worker, state = self.worker, item.state
        spec = item.fan.map_spec()
        item_node = spec.item_node(item.node_id, item.index)
        own = state.own
        base = worker.execution.node_context(
            state,
            BufferedContext(worker.inputs.context_of(state)),
            None,
            {},
            item.node_id,
            1,
            own.wake if own else None,
        )
        ctx = item_context(base, item.name, value, spec)
        ctx.attempt = state.job.attempt
        resolved: ResolvedNode | None = None
        started = time.perf_counter()
        try:
            if spec.blueprint_id is not None:
                return _Produced(await self._blueprint_output(state, item, spec, value))
            resolved = resolve(worker.registry, item_node.uses, item_node.params)
            result = await attempt_once(resolved, ctx, item_node.config, worker.middleware)
            return _Produced(result.output)
        except Suspend as suspend:
            worker.parking.sleep(state, item.name, suspend.until)
            return None
        except (FanOut, StartChild):
            message = (
                f"node {item.node_id!r}: item {item.index}: a map item cannot itself fan out or "
                "start a child run when distributed; use a sub-blueprint per item (blueprintId)"
            )
            worker.fail_run(state.head, message, key=state.key, attempts=state.job.attempt)
            return None
        except Exception as exc:
            return await self._item_failed(plan, item, item_node, resolved, ctx, exc)
        finally:
            worker.stats.durations_ms.append((time.perf_counter() - started) * 1000)

    async def _item_failed(
        self,
        plan: Plan,
        item: _ItemJob,
        item_node: NodeDefinition,
        resolved: ResolvedNode | None,
        ctx: NodeContext,
        exc: Exception,
    ) -> _Produced | Job | None:
        """The engine's failure step for the item (its hooks, a retry parked on the queue, a
        class node's own fallback); an item that fails for good fails the map node."""
        worker, state = self.worker, item.state
        worker.stats.node_failures += 1
        current = worker.runs.nodes(state.run_id, [item.name, state.key])
        if item.name in current and current[item.name].status == COMPLETED:
            # Another delivery of this item committed it meanwhile: that result stands.
            return self._arrived(plan, item)
        after = await handle_failure(item_node, resolved, ctx, exc, worker.registry)
        if after.retry is not None:
            worker.parking.retry(state, item.name, after.retry, exc, item_node.id)
            return None
        if after.result is not None:
            return _Produced(after.result.output)
        failure = after.message or describe_error(exc)
        message = f"node {item.node_id!r}: item {item.index}: {failure}"
        await self._fallback_or_fail(plan, state.head, state.key, exc, message, state.job.attempt)
        return None

    async def _blueprint_output(
        self, state: JobState, item: _ItemJob, spec: MapSpec, value: Any
    ) -> Any:
        """A map item's sub-blueprint runs inside this item's job, in process."""
        assert spec.blueprint_id is not None
        child = await self.worker.child_runtime().run(
            spec.blueprint_id,
            {"item": value, "index": item.index},
            run_id=f"{state.run_id}/{item.name}",
        )
        return blueprint_item_output(child, spec.blueprint_id)

    def _commit_item(self, plan: Plan, item: _ItemJob, output: Any) -> Job | None:
        """Commit the item's result as an instance of its own, then count it."""
        worker, state = self.worker, item.state
        worker.stats.nodes_executed += 1
        where = f"node {item.node_id!r}: item {item.index}"
        try:
            worker.runs.commit(
                state.run_id,
                item.name,
                output=output,
                action=None,
                attempts=state.job.attempt,
                decisions={},
                context_set={},
                context_delete=(),
                now=worker.clock.now(),
                where=where,
            )
        except CommitRejected as rejected:
            if rejected.reason != "committed":
                return None
        except (StateTooLarge, ValueTooLarge, PayloadsUnavailable, TypeError) as exc:
            message = f"{where}: {exc}; nothing of this item was stored"
            worker.fail_run(state.head, message, key=state.key, attempts=state.job.attempt)
            return None
        return self._arrived(plan, item)

    def _arrived(self, plan: Plan, item: _ItemJob) -> Job | None:
        """A finished item: the lane goes on with its next item; a lane's last item reports the
        lane done, and the report that completes every lane gathers (which checks each item's
        result: an item still running when a recovery re-sent others walks its lane to the end
        and reports again)."""
        worker, state, key = self.worker, item.state, item.state.key
        concurrency = item.fan.map_spec().concurrency
        lane = item.index % concurrency
        following = item.index + concurrency
        if following < item.count:
            return Job(
                run_id=state.run_id,
                blueprint_id=plan.graph.id,
                node_id=key,
                item=following,
                items=item.digest,
            )
        arrival = worker.runs.arrivals.arrive(
            state.run_id,
            map_join_target(key),
            lane,
            min(concurrency, item.count),
            True,
            claim=False,
            now=worker.clock.now(),
            bucket_size=worker.advancer.bucket_size,
        )
        if arrival.complete:
            follow = self.gather(plan, state.run_id, key, item.count)
            if follow is not None:
                worker.send([follow])
        return None

    def gather(self, plan: Plan, run_id: str, key: str, count: int) -> Job | None:
        """Every item is in: commit the map node with the results in order."""
        worker = self.worker
        names = [map_item_instance(key, i) for i in range(count)]
        _, read = worker.inputs.read_for(plan, run_id, key)  # the map's input comes with it
        head = read.head
        if head is None or head.final:
            return None
        records = worker.runs.nodes(run_id, names)
        missing = [n for n in names if n not in records or records[n].status != COMPLETED]
        if missing:
            return None  # not all in after all (a stale arrival): the last item gathers
        ordered = [worker.codec.decode(records[n].stored) for n in names]
        job = Job(run_id=run_id, blueprint_id=plan.graph.id, node_id=key)
        state = JobState(job=job, plan=plan, head=head, own=read.nodes.get(key), read=read)
        context = worker.inputs.context_of(state)
        node_input = worker.inputs.input_of(state, context)
        return worker.commits.commit(
            state, NodeResult(output=ordered), node_input, BufferedContext(context), 1
        )

    async def _fallback_or_fail(
        self, plan: Plan, head: Any, key: str, error: BaseException, message: str, attempts: int
    ) -> None:
        """A map whose item failed for good: its fallback (if any), else the run fails."""
        worker = self.worker
        job = Job(run_id=head.run_id, blueprint_id=plan.graph.id, node_id=key)
        _, read = worker.inputs.read_for(plan, head.run_id, key)
        state = JobState(job=job, plan=plan, head=head, own=read.nodes.get(key), read=read)
        context = worker.inputs.context_of(state)
        node_input = worker.inputs.input_of(state, context)
        buffered = BufferedContext(context)
        follow = await worker.execution.fallback_or_fail(
            state, error, message, node_input, buffered, attempts
        )
        if follow is not None:
            worker.send([follow])
