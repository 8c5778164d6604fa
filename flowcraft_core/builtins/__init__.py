"""Built-in nodes, registered by default under the names in ``names.py`` (overridable)."""

from __future__ import annotations

from typing import Any

from .loop import loop_node
from .map import map_node
from .names import BUILTIN_NODE_NAMES, LOOP, MAP, SLEEP, SUBFLOW, WAIT
from .sleep import sleep_node
from .subflow import subflow_node
from .wait import wait_node

__all__ = ["BUILTIN_NODE_NAMES", "default_registry"]


def default_registry() -> dict[str, Any]:
    return {
        SLEEP: sleep_node,
        WAIT: wait_node,
        SUBFLOW: subflow_node,
        MAP: map_node,
        LOOP: loop_node,
    }
