"""The user's application module (``FLOWCRAFT_APP``, default ``workflows``), loaded and checked.

An app module defines ``blueprints`` (blueprint id -> blueprint, a dict or a
``WorkflowBlueprint``) and ``registry`` (``uses`` key -> node implementation), and may define
``dependencies`` (a dict every node sees as ``ctx.dependencies``). The Lambda handlers, the
local stack and the command line all load it through :func:`load_app`, so a missing module, a
module that raises while importing, a missing name or a blueprint that does not load fails the
same way everywhere: at start-up, with a message that names the module and the error, instead
of a 500 on the first request.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from .environment import FLOWCRAFT_APP
from .errors import FlowcraftError

DEFAULT_APP_MODULE = "workflows"


class AppModuleError(FlowcraftError, RuntimeError):
    """The app module cannot be used; the message says which module and why."""


@dataclass(frozen=True)
class App:
    name: str
    module: ModuleType
    blueprints: Mapping[str, Any]
    registry: Mapping[str, Any]
    dependencies: Mapping[str, Any] = field(default_factory=dict)


def app_module_name(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return (env.get(FLOWCRAFT_APP) or "").strip() or DEFAULT_APP_MODULE


def load_app(
    name: str | None = None, *, search_path: str | None = None, check_blueprints: bool = True
) -> App:
    """Import and check the app module. ``search_path`` is put first on ``sys.path`` (the command
    line passes the current folder, which a console script does not have on its path)."""
    name = name or app_module_name()
    if search_path is not None and search_path not in sys.path:
        sys.path.insert(0, search_path)
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and name != exc.name and not name.startswith(f"{exc.name}."):
            raise AppModuleError(
                f"{FLOWCRAFT_APP}={name!r} failed while importing: {_describe(exc)}"
            ) from exc
        raise AppModuleError(
            f"{FLOWCRAFT_APP}={name!r} cannot be imported ({exc}); it must name a module on the "
            "path (the folder you run from, or the function's code) that defines `blueprints` "
            "and `registry`"
        ) from exc
    except Exception as exc:
        raise AppModuleError(
            f"{FLOWCRAFT_APP}={name!r} failed while importing: {_describe(exc)}"
        ) from exc
    for attribute, what in (
        ("blueprints", "a dict of blueprint id -> blueprint"),
        ("registry", "a dict of `uses` key -> node implementation"),
    ):
        value = getattr(module, attribute, None)
        if not isinstance(value, Mapping):
            found = "nothing" if value is None else type(value).__name__
            raise AppModuleError(
                f"{FLOWCRAFT_APP}={name!r} must define `{attribute}` ({what}); found {found}"
            )
    dependencies = getattr(module, "dependencies", None)
    if dependencies is not None and not isinstance(dependencies, Mapping):
        raise AppModuleError(
            f"{FLOWCRAFT_APP}={name!r}: `dependencies` must be a dict, "
            f"not {type(dependencies).__name__}"
        )
    app = App(
        name=name,
        module=module,
        blueprints=module.blueprints,
        registry=module.registry,
        dependencies=dependencies or {},
    )
    if check_blueprints:
        _check_blueprints(app)
    return app


def _check_blueprints(app: App) -> None:
    from .blueprint import load_blueprint

    for blueprint_id, blueprint in app.blueprints.items():
        try:
            load_blueprint(blueprint)
        except Exception as exc:
            raise AppModuleError(
                f"{FLOWCRAFT_APP}={app.name!r}: blueprint {blueprint_id!r} does not load: {exc}"
            ) from exc


def _describe(exc: BaseException) -> str:
    """``NameError: name 'x' is not defined (workflows/mine.py, line 12)``."""
    frames = traceback.extract_tb(exc.__traceback__)
    own = [f for f in frames if "importlib" not in f.filename]
    where = ""
    if own:
        last = own[-1]
        where = f" ({os.path.relpath(last.filename)}, line {last.lineno})"
    return f"{type(exc).__name__}: {exc}{where}"


# ------------------------------------------------------------------------- app packages


@dataclass(frozen=True)
class Discovered:
    """What :func:`discover` found in an app package."""

    blueprints: dict[str, Any]
    registry: dict[str, Any]
    sample_contexts: dict[str, dict[str, Any]]
    modules: tuple[ModuleType, ...]


def discover(package: str) -> Discovered:
    """Collect every workflow module of an app package (what ``flowcraft new`` writes).

    A workflow module defines ``BLUEPRINT`` (its blueprint), ``REGISTRY`` (its node
    implementations), optionally ``SAMPLE_CONTEXT`` (a starting context for the demo and tests)
    and ``EXTRA_BLUEPRINTS`` (blueprints it uses as subflows). Modules whose name starts with
    ``_`` and modules without ``BLUEPRINT`` are left alone, so helpers can live beside them.
    Adding a workflow is adding a file: nothing else lists them.
    """
    import pkgutil

    root = importlib.import_module(package)
    modules: list[ModuleType] = []
    for info in sorted(pkgutil.iter_modules(root.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        if hasattr(module, "BLUEPRINT") and hasattr(module, "REGISTRY"):
            modules.append(module)
    blueprints: dict[str, Any] = {}
    samples: dict[str, dict[str, Any]] = {}
    for module in modules:
        for blueprint in (module.BLUEPRINT, *getattr(module, "EXTRA_BLUEPRINTS", ())):
            blueprint_id = _blueprint_id(blueprint)
            if blueprint_id in blueprints:
                raise ValueError(
                    f"blueprint id {blueprint_id!r} is defined twice ({module.__name__})"
                )
            blueprints[blueprint_id] = blueprint
        if hasattr(module, "SAMPLE_CONTEXT"):
            samples[_blueprint_id(module.BLUEPRINT)] = module.SAMPLE_CONTEXT
    return Discovered(
        blueprints=blueprints,
        registry=merge_registries(tuple(modules)),
        sample_contexts=samples,
        modules=tuple(modules),
    )


def merge_registries(modules: tuple[Any, ...]) -> dict[str, Any]:
    """One registry for all workflow modules; a key defined twice is a bug, refused loudly."""
    merged: dict[str, Any] = {}
    for module in modules:
        for key, implementation in module.REGISTRY.items():
            if key in merged and merged[key] is not implementation:
                raise ValueError(f"registry key {key!r} is defined twice ({module.__name__})")
            merged[key] = implementation
    return merged


def _blueprint_id(blueprint: Any) -> str:
    return str(blueprint["id"] if isinstance(blueprint, Mapping) else blueprint.id)
