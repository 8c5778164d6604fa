"""The example application: blueprints and node implementations, ready for both drivers.

This module is what ``FLOWCRAFT_APP`` names by default: the Lambda handlers import it and read
``blueprints`` (id -> blueprint dict), ``registry`` (``uses`` key -> implementation) and
``dependencies`` (passed to every node as ``ctx.dependencies``). The same three names run the
examples in memory::

    from flowcraft_core import FlowRuntime
    from workflows import blueprints, registry

    result = await FlowRuntime(registry, blueprints=blueprints).run("order", SAMPLE_CONTEXT)

Each workflow lives in its own module with its node functions, its ``BLUEPRINT``, its
``REGISTRY`` and a ``SAMPLE_CONTEXT`` (used by ``python -m local demo`` and the tests). Every
such module in this package is picked up (:func:`flowcraft_core.app.discover`): adding a
workflow is adding a file, e.g. with ``flowcraft new NAME``.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from flowcraft_core.app import discover

from . import approval, onboarding, order, reminder, retry_loop, thumbnails

#: The bundled examples, in the order the demo runs them.
EXAMPLES: tuple[ModuleType, ...] = (order, approval, thumbnails, reminder, onboarding, retry_loop)

_found = discover(__name__)

blueprints: dict[str, Any] = _found.blueprints
registry: dict[str, Any] = _found.registry
dependencies: dict[str, Any] = {}
#: Sample starting context per runnable workflow (the child ``welcome_kit`` has none).
sample_contexts: dict[str, dict[str, Any]] = _found.sample_contexts

__all__ = ["EXAMPLES", "blueprints", "dependencies", "registry", "sample_contexts"]
