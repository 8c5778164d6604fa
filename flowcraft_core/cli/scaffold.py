"""``flowcraft new NAME``: a workflow module, its test, and (if missing) the app package.

The module follows the app-package convention (:func:`flowcraft_core.app.discover`): it defines
``BLUEPRINT``, ``REGISTRY`` and ``SAMPLE_CONTEXT``, so dropping it into the package is all it
takes to run it in memory, on ``make up`` and in the deployed stack. The files are templates
written out once; nothing regenerates or owns them afterwards.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import FlowcraftError


class ScaffoldError(FlowcraftError, ValueError):
    """The name is unusable or the files already exist."""


@dataclass
class Scaffolded:
    written: list[Path] = field(default_factory=list)
    next_steps: list[str] = field(default_factory=list)


_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

PACKAGE_INIT = '''"""My Flowcraft app (FLOWCRAFT_APP): every workflow module in this package.

A workflow module defines BLUEPRINT, REGISTRY and SAMPLE_CONTEXT (see `flowcraft new NAME`).
"""

from __future__ import annotations

from typing import Any

from flowcraft_core.app import discover

_found = discover(__name__)

blueprints: dict[str, Any] = _found.blueprints
registry: dict[str, Any] = _found.registry
#: Passed to every node as ``ctx.dependencies`` (clients, settings, ...).
dependencies: dict[str, Any] = {{}}
sample_contexts: dict[str, dict[str, Any]] = _found.sample_contexts
'''

MODULE = '''"""A workflow made by ``flowcraft new``: greet someone, then record that it was done.

Edit the nodes and the blueprint; keep BLUEPRINT, REGISTRY and SAMPLE_CONTEXT, which is how the
app package finds this workflow. Registry keys are prefixed with the workflow's name, so they
never clash with another workflow's.
"""

from __future__ import annotations

from typing import Any

from flowcraft_core import NodeContext, NodeResult

#: A starting context for the demo, the test and ``flowcraft start``.
SAMPLE_CONTEXT: dict[str, Any] = {{"name": "Ada"}}


async def greet(ctx: NodeContext) -> NodeResult:
    """Reads the run's context; may run more than once (retries), so no side effects here
    that cannot be repeated (use ctx.run_id / ctx.node_id as an idempotency key)."""
    name = await ctx.context.get("name", "world")
    await ctx.context.set("greeted", name)
    return NodeResult(output={{"greeting": f"Hello, {{name}}!"}})


def finish(ctx: NodeContext) -> NodeResult:
    """Receives ``greet``'s output as its input."""
    return NodeResult(output={{"done": True, **ctx.input}})


REGISTRY: dict[str, Any] = {{
    "{name}.greet": greet,
    "{name}.finish": finish,
}}

BLUEPRINT: dict[str, Any] = {{
    "id": "{name}",
    "nodes": [
        {{
            "id": "greet",
            "uses": "{name}.greet",
            "config": {{"maxRetries": 2, "retryDelay": 200}},
        }},
        {{
            "id": "finish",
            "uses": "{name}.finish",
        }},
    ],
    "edges": [
        {{"source": "greet", "target": "finish"}},
    ],
}}
'''

TEST = '''"""In memory: the workflow lints clean and runs to the expected result.

The app is loaded the way the handlers load it (``load_app``), so this also checks that the
workflow is part of the app.
"""

from __future__ import annotations

import asyncio
import importlib

from flowcraft_core import FlowRuntime, lint_blueprint
from flowcraft_core.app import load_app

WORKFLOW = "{name}"
APP = load_app("{app}")
SAMPLE_CONTEXT = importlib.import_module(f"{{APP.name}}.{{WORKFLOW}}").SAMPLE_CONTEXT


def test_lints_clean() -> None:
    assert lint_blueprint(APP.blueprints[WORKFLOW], APP.registry).issues == []


def test_runs_in_memory() -> None:
    runtime = FlowRuntime(APP.registry, blueprints=APP.blueprints)
    result = asyncio.run(runtime.run(WORKFLOW, SAMPLE_CONTEXT))
    assert result.status == "completed", result.errors
    assert result.outputs["finish"] == {{"done": True, "greeting": "Hello, Ada!"}}
'''


def scaffold(name: str, directory: Path, app: str) -> Scaffolded:
    """Write ``<app>/<name>.py`` and ``tests/test_<name>.py`` under ``directory``."""
    if not _NAME.match(name) or keyword.iskeyword(name):
        raise ScaffoldError(
            f"workflow name {name!r} must be a lowercase Python identifier "
            "(letters, digits, underscores; e.g. send_invoice)"
        )
    if not all(part.isidentifier() for part in app.split(".")):
        raise ScaffoldError(f"app module {app!r} is not a Python module name")
    package = directory.joinpath(*app.split("."))
    module = package / f"{name}.py"
    test = directory / "tests" / f"test_{name}.py"
    existing = [str(p) for p in (module, test) if p.exists()]
    if existing:
        raise ScaffoldError(f"not overwriting {', '.join(existing)}")
    result = Scaffolded()
    init = package / "__init__.py"
    if not init.exists():
        package.mkdir(parents=True, exist_ok=True)
        init.write_text(PACKAGE_INIT.format(), encoding="utf-8")
        result.written.append(init)
        discovers = True
    else:
        discovers = "discover(" in init.read_text(encoding="utf-8")
    module.write_text(MODULE.format(name=name), encoding="utf-8")
    result.written.append(module)
    test.parent.mkdir(parents=True, exist_ok=True)
    test.write_text(TEST.format(name=name, app=app), encoding="utf-8")
    result.written.append(test)
    if not discovers:
        result.next_steps.append(
            f"{init} does not collect workflow modules: add {name}.BLUEPRINT to `blueprints` "
            f"and {name}.REGISTRY to `registry` there (or use flowcraft_core.app.discover)."
        )
    sample = '\'{"name": "Ada"}\''
    result.next_steps += [
        "",
        "next steps:",
        f"  python -m pytest {test}",
        "  make up    (in the Flowcraft checkout: the local stack; then in another shell:)",
        f"  flowcraft start {name} --context {sample} --wait",
        "  npx aws-cdk@2 deploy    (then, on AWS:)",
        f"  flowcraft --stack flowcraft start {name} --context {sample} --wait",
    ]
    return result
