"""Built-in nodes, registered by default under the names in ``names.py`` (overridable)."""

from __future__ import annotations

from typing import Any

from .batch import batch_gather_node, batch_scatter_node
from .loop import loop_controller_node, loop_node
from .map import map_node
from .names import (
    BATCH_GATHER,
    BATCH_SCATTER,
    BUILTIN_NODE_NAMES,
    CLASS_ALIASES,
    LOOP,
    LOOP_CONTROLLER,
    MAP,
    SLEEP,
    SUBFLOW,
    WAIT,
    WEBHOOK,
)
from .sleep import sleep_node
from .subflow import subflow_node
from .wait import wait_node
from .webhook import webhook_node

__all__ = ["BUILTIN_NODE_NAMES", "default_registry"]


def default_registry() -> dict[str, Any]:
    registry: dict[str, Any] = {
        SLEEP: sleep_node,
        WAIT: wait_node,
        SUBFLOW: subflow_node,
        MAP: map_node,
        LOOP: loop_node,
        LOOP_CONTROLLER: loop_controller_node,
        BATCH_SCATTER: batch_scatter_node,
        BATCH_GATHER: batch_gather_node,
        WEBHOOK: webhook_node,
    }
    for alias, name in CLASS_ALIASES.items():
        registry[alias] = registry[name]
    return registry
