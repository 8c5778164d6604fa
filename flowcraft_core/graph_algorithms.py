"""Graph algorithms shared by analysis and the scheduler.

Iterative, not recursive: 10,000-node graphs must not hit the recursion limit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence


def strongly_connected_components(
    nodes: Sequence[str], successors: Mapping[str, Iterable[str]]
) -> list[list[str]]:
    """Tarjan's algorithm without recursion. Components come in reverse topological order."""
    index_of: dict[str, int] = {}
    lowlink: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in nodes:
        if root in index_of:
            continue
        work: list[tuple[str, list[str], int]] = [(root, list(successors.get(root, ())), 0)]
        index_of[root] = lowlink[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, succ, position = work[-1]
            if position < len(succ):
                work[-1] = (node, succ, position + 1)
                nxt = succ[position]
                if nxt not in index_of:
                    index_of[nxt] = lowlink[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, list(successors.get(nxt, ())), 0))
                elif nxt in on_stack:
                    lowlink[node] = min(lowlink[node], index_of[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                lowlink[parent] = min(lowlink[parent], lowlink[node])
            if lowlink[node] == index_of[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
    return components


def cyclic_components(
    nodes: Sequence[str], successors: Mapping[str, Iterable[str]]
) -> list[list[str]]:
    """Components that contain a cycle (more than one node, or a self-loop)."""
    result = []
    for component in strongly_connected_components(nodes, successors):
        if len(component) > 1 or component[0] in set(successors.get(component[0], ())):
            result.append(component)
    return result


def cycle_paths(nodes: Sequence[str], successors: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Cycles as flowcraft's ``checkForCycles`` reports them: one closed path per back edge
    of a depth-first search from each unvisited node in order (``['A', 'B', 'A']``).

    Iterative; each back edge is reported once (flowcraft may repeat one).
    """
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []
    for root in nodes:
        if root in state:
            continue
        path: list[str] = [root]
        position = {root: 0}
        state[root] = 1
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, index = work[-1]
            neighbors = successors.get(node, ())
            if index < len(neighbors):
                work[-1] = (node, index + 1)
                nxt = neighbors[index]
                seen = state.get(nxt)
                if seen == 1:
                    cycles.append([*path[position[nxt] :], nxt])
                elif seen is None:
                    state[nxt] = 1
                    position[nxt] = len(path)
                    path.append(nxt)
                    work.append((nxt, 0))
                continue
            work.pop()
            state[node] = 2
            path.pop()
            del position[node]
    return cycles
