"""What a Lambda container builds once and every invocation reuses: settings, the application
module's adapter, logger, metrics and (when wanted) the tracer, rebuilt only when the
environment changes. Why each is built when it is: docs/design.md, section 5.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar, cast

from aws_lambda_powertools import Logger, Metrics

if TYPE_CHECKING:
    from flowcraft_core.aws.adapter import SqsAdapter
    from flowcraft_core.aws.settings import AwsSettings

SERVICE = "flowcraft"

logger = Logger(service=SERVICE)
metrics = Metrics(
    namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Flowcraft"), service=SERVICE
)

#: Variables whose values decide what :func:`container` builds (a change triggers a rebuild).
#: (Read from ``flowcraft_core.environment`` on first use: importing the engine at module import
#: would put its ~70 ms on every cold start, before the handler is even called.)
_environment_keys: tuple[str, ...] = ()

HandlerT = TypeVar("HandlerT", bound=Callable[..., Any])


class ConfigError(RuntimeError):
    """The container cannot serve: a variable is missing or the app module is unusable."""


@dataclass(frozen=True)
class Container:
    """Everything built once per container (per environment: docs/design.md, section 5)."""

    settings: AwsSettings
    app: ModuleType
    adapter: SqsAdapter
    #: (blueprint id, node id) -> the node's ``config.timeout`` in ms, for nodes that have one.
    node_timeouts_ms: dict[tuple[str, str], float] = field(default_factory=dict)

    @property
    def blueprint_ids(self) -> list[str]:
        return sorted(self.adapter.worker.blueprints)


_lock = threading.Lock()
_container: Container | None = None
_fingerprint: tuple[str | None, ...] | None = None


def _environment_fingerprint() -> tuple[str | None, ...]:
    global _environment_keys
    if not _environment_keys:
        from flowcraft_core.environment import AWS_ENDPOINTS, FLOWCRAFT_VARIABLES

        _environment_keys = (*FLOWCRAFT_VARIABLES, *AWS_ENDPOINTS)
    return tuple(os.environ.get(key) for key in _environment_keys)


def container() -> Container:
    """The container's settings, app and adapter; built on first use (thread-safe)."""
    global _container, _fingerprint
    fingerprint = _environment_fingerprint()
    current = _container
    if current is not None and fingerprint == _fingerprint:
        return current
    with _lock:
        if _container is not None and fingerprint == _fingerprint:
            return _container
        if _container is not None:
            logger.info("environment changed; rebuilding the Flowcraft configuration")
            _reset_clients()
        _container = _build()
        _fingerprint = fingerprint
        return _container


def settings() -> AwsSettings:
    return container().settings


def adapter() -> SqsAdapter:
    return container().adapter


def reset() -> None:
    """Forget the built settings, app module binding, adapter and boto3 clients (for tests)."""
    global _container, _fingerprint
    with _lock:
        _container = None
        _fingerprint = None
        _reset_clients()


def _reset_clients() -> None:
    # Only if flowcraft_core's client cache was imported at all: importing it here would pull
    # boto3 into a process that never needed it.
    clients = sys.modules.get("flowcraft_core.aws.clients")
    if clients is not None:
        clients.reset_clients()


def _build() -> Container:
    from flowcraft_core.aws.settings import AwsSettings, SettingsError

    try:
        settings = AwsSettings.from_environ()
    except SettingsError as exc:
        raise ConfigError(f"Flowcraft handler cannot start: {exc}") from None
    app = _import_app(settings.app_module)
    blueprints = app.blueprints
    registry = app.registry
    dependencies = getattr(app, "dependencies", None)

    from flowcraft_core.aws.adapter import SqsAdapter

    try:
        built = SqsAdapter.from_settings(
            settings, blueprints=blueprints, registry=registry, dependencies=dependencies
        )
    except Exception as exc:
        raise ConfigError(
            f"FLOWCRAFT_APP={settings.app_module!r}: its blueprints do not load: {exc}"
        ) from exc
    timeouts = {
        (blueprint_id, node.id): float(node.config.timeout)
        for blueprint_id, blueprint in built.worker.blueprints.items()
        for node in blueprint.nodes
        if node.config.timeout is not None
    }
    result = Container(settings=settings, app=app, adapter=built, node_timeouts_ms=timeouts)
    logger.info(
        "Flowcraft configured",
        extra={
            "app": settings.app_module,
            "blueprints": result.blueprint_ids,
            "queue_url": settings.queue_url,
            "context_table": settings.context_table,
            "status_table": settings.status_table,
            "coordination_table": settings.coordination_table,
        },
    )
    return result


def _import_app(name: str) -> ModuleType:
    """Import ``FLOWCRAFT_APP`` and check it exposes what the handlers need, by name.

    :func:`flowcraft_core.app.load_app` does the work, so the handlers, ``python -m local up``
    and the command line refuse a broken app module with the same message.
    """
    from flowcraft_core.app import AppModuleError, load_app

    try:
        return load_app(name, check_blueprints=False).module
    except AppModuleError as exc:
        raise ConfigError(str(exc)) from exc.__cause__


def check_app_at_cold_start(environ: Mapping[str, str] | None = None) -> None:
    """Inside Lambda, import the app module while the container initialises.

    A missing or broken ``FLOWCRAFT_APP`` then fails the function's init phase with a message
    naming the module and the error (Lambda reports it as the import error of the handler),
    instead of answering the first request with a 500 and every later one the same. Outside
    Lambda nothing happens here: tests and the local stack import the handlers before they set
    ``FLOWCRAFT_APP`` (the local stack checks the app itself when it starts).
    """
    env = os.environ if environ is None else environ
    if not env.get("AWS_LAMBDA_FUNCTION_NAME") or env.get("AWS_SAM_LOCAL"):
        return
    from flowcraft_core.app import app_module_name

    _import_app(app_module_name(env))


# --------------------------------------------------------------------------------- tracing


def tracing_wanted(environ: Mapping[str, str] | None = None) -> bool:
    """Whether to create a Powertools ``Tracer`` (and pay for importing the X-Ray SDK).

    Only inside Lambda (``AWS_LAMBDA_FUNCTION_NAME`` set, not ``sam local``) and only when
    ``POWERTOOLS_TRACE_DISABLED`` is not true. Outside Lambda Powertools disables tracing anyway,
    so creating the tracer there would cost ~250 ms of imports for nothing. The stack sets
    ``POWERTOOLS_TRACE_DISABLED=false`` together with active tracing, and ``true`` without it.
    """
    env = os.environ if environ is None else environ
    if env.get("POWERTOOLS_TRACE_DISABLED", "").strip().lower() in {"1", "true", "yes", "on"}:
        return False
    return bool(env.get("AWS_LAMBDA_FUNCTION_NAME")) and not env.get("AWS_SAM_LOCAL")


_tracer: Any = None


def tracer() -> Any:
    """The Powertools ``Tracer``, created on first call (imports the X-Ray SDK)."""
    global _tracer
    if _tracer is None:
        from aws_lambda_powertools import Tracer

        _tracer = Tracer(service=SERVICE)
    return _tracer


def traced(handler: HandlerT) -> HandlerT:
    """Wrap ``handler`` in an X-Ray segment when tracing is wanted; otherwise return it as is.

    Decided once, when the handler module is imported (a container's environment is fixed).
    Responses are not captured: run contexts may hold personal data and can be large.
    """
    if not tracing_wanted():
        return handler
    wrapped = tracer().capture_lambda_handler(handler, capture_response=False)
    return cast(HandlerT, wrapped)


check_app_at_cold_start()
