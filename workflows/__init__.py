"""The example application: blueprints and node implementations, ready for both drivers.

This module is what ``FLOWCRAFT_APP`` names by default: the Lambda handlers import it and read
``blueprints`` (id -> blueprint dict), ``registry`` (``uses`` key -> implementation) and
``dependencies`` (passed to every node as ``ctx.dependencies``). The same three names run the
examples in memory::

    from flowcraft_core import FlowRuntime
    from workflows import blueprints, registry

    result = await FlowRuntime(registry, blueprints=blueprints).run("order", SAMPLE_CONTEXT)

Each example lives in its own module with its node functions, its blueprint and a
``SAMPLE_CONTEXT`` (used by ``python -m local demo`` and the tests).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from . import approval, onboarding, order, reminder, retry_loop, thumbnails

#: The example modules, in the order the demo runs them.
EXAMPLES: tuple[ModuleType, ...] = (order, approval, thumbnails, reminder, onboarding, retry_loop)


def _merge_registries(modules: tuple[ModuleType, ...]) -> dict[str, Any]:
    """One registry for all examples; a key defined twice is a bug, so refuse it loudly."""
    merged: dict[str, Any] = {}
    for module in modules:
        for key, implementation in module.REGISTRY.items():
            if key in merged and merged[key] is not implementation:
                raise ValueError(f"registry key {key!r} is defined twice ({module.__name__})")
            merged[key] = implementation
    return merged


blueprints: dict[str, dict[str, Any]] = {
    module.BLUEPRINT["id"]: module.BLUEPRINT for module in EXAMPLES
}
blueprints[onboarding.WELCOME_KIT["id"]] = onboarding.WELCOME_KIT

registry: dict[str, Any] = _merge_registries(EXAMPLES)

dependencies: dict[str, Any] = {}

#: Sample starting context per runnable example (the child ``welcome_kit`` has none).
sample_contexts: dict[str, dict[str, Any]] = {
    module.BLUEPRINT["id"]: module.SAMPLE_CONTEXT for module in EXAMPLES
}

__all__ = ["EXAMPLES", "blueprints", "dependencies", "registry", "sample_contexts"]
