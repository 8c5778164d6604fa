"""Where a run's state lives: the keys of its items, one small item per fact, all in the context
table, and the compact forms of edge decisions. The layout and why: docs/design.md, section 3.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: The virtual join every sink, ``any`` join and loop of a run arrives at: when it is complete,
#: every node instance of the run has settled.
END = "$end"
#: Arrivals per join bucket: a join wider than this is split, so no arrival rewrites a big set.
BUCKET = 100


def head_key(run_id: str) -> str:
    return run_id


def node_key(run_id: str, instance: str) -> str:
    return f"{run_id}#n#{instance}"


def join_key(run_id: str, target: str, bucket: int | None = None) -> str:
    base = f"{run_id}#j#{target}"
    return base if bucket is None else f"{base}#b{bucket}"


def fanout_key(run_id: str, instance: str) -> str:
    return f"{run_id}#f#{instance}"


def map_join_target(instance: str) -> str:
    """The join that counts a map's finished items."""
    return f"{instance}[items]"


def loop_iteration_key(run_id: str, loop: int, iteration: int) -> str:
    return f"{run_id}#l#{loop}#{iteration}"


def loop_exits_key(run_id: str, loop: int) -> str:
    return f"{run_id}#x#{loop}"


# ----------------------------------------------------------------------------- decisions
def encode_indices(indices: Iterable[int]) -> str:
    """Edge indices as ranges ("0-1999,2005"): a 2,000-edge fan-out's decisions in a few bytes."""
    ordered = sorted(set(indices))
    parts: list[str] = []
    position = 0
    while position < len(ordered):
        start = end = ordered[position]
        while position + 1 < len(ordered) and ordered[position + 1] == end + 1:
            position += 1
            end = ordered[position]
        parts.append(str(start) if start == end else f"{start}-{end}")
        position += 1
    return ",".join(parts)


def decode_indices(text: str | None) -> list[int]:
    if not text:
        return []
    found: list[int] = []
    for part in str(text).split(","):
        first, _, last = part.partition("-")
        found.extend(range(int(first), int(last or first) + 1))
    return found


def ranges_hold(text: str | None, index: int) -> bool:
    """Whether ``index`` is in ranges like "0-1999,2005" (without expanding them)."""
    if not text:
        return False
    for part in str(text).split(","):
        first, _, last = part.partition("-")
        if int(first) <= index <= int(last or first):
            return True
    return False


def encode_decisions(decisions: dict[int, bool]) -> dict[str, Any]:
    taken = [i for i, t in decisions.items() if t]
    skipped = [i for i, t in decisions.items() if not t]
    encoded: dict[str, Any] = {}
    if taken:
        encoded["dt"] = encode_indices(taken)
    if skipped:
        encoded["dn"] = encode_indices(skipped)
    return encoded


def decode_decisions(item: dict[str, Any]) -> dict[int, bool]:
    decisions = {i: True for i in decode_indices(item.get("dt"))}
    decisions.update({i: False for i in decode_indices(item.get("dn"))})
    return decisions
