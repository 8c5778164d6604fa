"""In-memory engine cost: median microseconds per executed node on several graph shapes.

Each run's result is checked, so a broken run is never timed as a fast one. Times are the
process's CPU time (``time.process_time``): the engine runs on one thread and these nodes never
wait, so on an idle machine it equals wall time, and on a busy one it does not count the time
other processes held the CPU. Prints figures; never passes or fails on time.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flowcraft_core import FlowRuntime, NodeContext, NodeResult


def step(ctx: NodeContext) -> NodeResult:
    return NodeResult(output=1)


async def astep(ctx: NodeContext) -> NodeResult:
    return NodeResult(output=1)


def chain(n: int) -> dict[str, Any]:
    return {
        "id": f"chain{n}",
        "nodes": [{"id": f"n{i}", "uses": "step"} for i in range(n)],
        "edges": [{"source": f"n{i}", "target": f"n{i + 1}"} for i in range(n - 1)],
    }


def fan(width: int) -> dict[str, Any]:
    nodes = [{"id": "s", "uses": "step"}, {"id": "j", "uses": "step"}]
    nodes += [{"id": f"w{i}", "uses": "step"} for i in range(width)]
    edges = [{"source": "s", "target": f"w{i}"} for i in range(width)]
    edges += [{"source": f"w{i}", "target": "j"} for i in range(width)]
    return {"id": f"fan{width}", "nodes": nodes, "edges": edges}


def lattice(width: int, layers: int) -> dict[str, Any]:
    nodes = [{"id": "s", "uses": "step"}]
    edges = []
    previous = ["s"]
    for layer in range(layers):
        current = [f"l{layer}_{i}" for i in range(width)]
        nodes += [{"id": n, "uses": "step"} for n in current]
        edges += [{"source": p, "target": c} for c in current for p in previous]
        previous = current
    return {"id": f"lattice{width}x{layers}", "nodes": nodes, "edges": edges}


def branchy() -> dict[str, Any]:
    return {
        "id": "branchy",
        "nodes": [
            {"id": "check", "uses": "decide"},
            {"id": "yes", "uses": "step"},
            {"id": "no", "uses": "step"},
            {"id": "merge", "uses": "step"},
            {"id": "end", "uses": "step"},
        ],
        "edges": [
            {"source": "check", "target": "yes", "action": "yes"},
            {"source": "check", "target": "no", "action": "no"},
            {"source": "yes", "target": "merge"},
            {"source": "no", "target": "merge"},
            {"source": "merge", "target": "end", "condition": "result.output == 1"},
        ],
    }


def decide(ctx: NodeContext) -> NodeResult:
    return NodeResult(output=1, action="yes")


def measure(runtime: FlowRuntime, blueprint: Any, executed: int, repeats: int) -> float:
    """Median µs per node of ``runtime.run(<the blueprint as a dict>)``, as users call it (the
    first, warm-up run compiles the dict; later runs find it in the runtime's cache)."""

    async def once() -> float:
        start = time.process_time()
        result = await runtime.run(blueprint)
        elapsed = time.process_time() - start
        if (
            result.status != "completed"
            or sum(s == "completed" for s in result.node_statuses.values()) != executed
        ):
            name = blueprint["id"] if isinstance(blueprint, dict) else blueprint.id
            raise SystemExit(f"{name}: broken run {result.status} {result.errors[:1]}")
        return elapsed

    async def all_runs() -> list[float]:
        await once()  # warm-up
        return [await once() for _ in range(repeats)]

    samples = asyncio.run(all_runs())
    return statistics.median(samples) / executed * 1e6


def main() -> None:
    print(
        f"Python {sys.version.split()[0]}; median CPU µs per executed node (trivial nodes), "
        "through runtime.run(<blueprint dict>)"
    )
    print(f"{'shape':<26}{'nodes':>8}{'sync fn':>10}{'async fn':>10}{'model':>10}")
    shapes = [
        ("chain 10", chain(10), 10, 300),
        ("chain 100", chain(100), 100, 50),
        ("chain 1,000", chain(1000), 1000, 20),
        ("chain 10,000", chain(10_000), 10_000, 9),
        ("fan-out/in 100", fan(100), 102, 50),
        ("fan-out/in 1,000", fan(1000), 1002, 20),
        ("fan-out/in 10,000", fan(10_000), 10_002, 5),
        ("lattice 10 x 10", lattice(10, 10), 101, 30),
        ("lattice 10 x 50", lattice(10, 50), 501, 40),
    ]
    figures: dict[str, float] = {}
    for name, blueprint, executed, repeats in shapes:
        sync_us = measure(FlowRuntime({"step": step}), blueprint, executed, repeats)
        async_us = measure(FlowRuntime({"step": astep}), blueprint, executed, repeats)
        # The same sync run given a loaded model instead of the dict (for comparison).
        compiled = FlowRuntime({"step": step})
        model_us = measure(compiled, compiled.compile(blueprint).blueprint, executed, repeats)
        figures[name] = sync_us
        print(f"{name:<26}{executed:>8}{sync_us:>10.2f}{async_us:>10.2f}{model_us:>10.2f}")
    runtime = FlowRuntime({"step": step, "decide": decide})
    per_node = measure(runtime, branchy(), 4, 200)
    print(
        f"{'branchy 5-node flow':<26}{4:>8}{per_node:>10.2f}   (per run: {per_node * 4:.1f} µs, 1 skipped)"
    )
    flat = figures["chain 10,000"] / figures["chain 10"]
    print(f"\nflatness: chain 10,000 / chain 10 per node = {flat:.2f}x (target <= 1.5x)")
    fans = figures["fan-out/in 10,000"] / figures["fan-out/in 100"]
    print(f"flatness: fan-out/in 10,000 / fan-out/in 100 per node = {fans:.2f}x")


if __name__ == "__main__":
    main()
