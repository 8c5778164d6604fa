"""What a node implementation sees (NodeContext) and returns (NodeResult), and how `uses`
names are resolved to implementations.

A node is either a plain function ``f(ctx)`` (sync or async) or a ``BaseNode`` subclass with the
``prep -> exec -> post`` lifecycle. Both drivers call nodes through this module, so a node behaves
the same in memory and on Lambda.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .context import AsyncContext
from .errors import FlowcraftError


class UnknownImplementationError(FlowcraftError, LookupError):
    """A blueprint names an implementation that is not in the registry."""


class CancelledRunError(FlowcraftError, Exception):
    """Raised inside a node by ``ctx.raise_if_cancelled()`` once the run is cancelled."""


@dataclass(slots=True)
class NodeResult:
    """What a node produced: an output, optionally an action that routes outgoing edges."""

    output: Any = None
    action: str | None = None
    #: Set by built-ins that park the run (``wait``); drivers turn it into status ``awaiting``.
    awaiting: bool = False


class CancellationSignal:
    """A cancellation flag that nodes can poll or await; shared by every node of a run."""

    __slots__ = ("_event", "_set", "reason")

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None
        self.reason: str | None = None
        self._set = False

    @property
    def cancelled(self) -> bool:
        return self._set

    def cancel(self, reason: str = "cancelled") -> None:
        if not self._set:
            self._set = True
            self.reason = reason
            if self._event is not None:
                self._event.set()

    async def wait(self) -> None:
        if self._set:
            return
        if self._event is None:
            self._event = asyncio.Event()
        await self._event.wait()


@dataclass(slots=True)
class NodeContext:
    """Everything a node may use. ``context`` is the run's shared, async key-value state."""

    context: AsyncContext
    input: Any
    params: Mapping[str, Any]
    dependencies: Mapping[str, Any]
    run_id: str
    node_id: str
    attempt: int = 1
    iteration: int = 0
    blueprint_id: str = ""
    signal: CancellationSignal = field(default_factory=CancellationSignal)
    #: The driver's services for built-ins (an ``ExecutionServices``).
    services: Any = None

    @property
    def cancelled(self) -> bool:
        return self.signal.cancelled

    def raise_if_cancelled(self) -> None:
        if self.signal.cancelled:
            raise CancelledRunError(self.signal.reason or "cancelled")


class BaseNode:
    """Class-based node: ``prep`` reads, ``exec`` computes, ``post`` decides the result.

    ``fallback`` runs when every attempt failed (return a result to recover); ``recover``
    runs after a failed attempt for clean-up. Override what you need.
    """

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        self.params: Mapping[str, Any] = params or {}

    async def prep(self, ctx: NodeContext) -> Any:
        return ctx.input

    async def exec(self, prep_result: Any, ctx: NodeContext) -> Any:
        return prep_result

    async def post(self, prep_result: Any, exec_result: Any, ctx: NodeContext) -> Any:
        return NodeResult(output=exec_result)

    async def fallback(self, prep_result: Any, error: BaseException, ctx: NodeContext) -> Any:
        raise error

    async def recover(self, error: BaseException, ctx: NodeContext) -> None:
        return None


NodeFunction = Callable[[NodeContext], Any]
NodeImplementation = NodeFunction | type[BaseNode]
Registry = Mapping[str, NodeImplementation]


def to_node_result(value: Any) -> NodeResult:
    """Normalise what a node returned: NodeResult, ``{"output", "action"}`` dict, or None."""
    if value is None:
        return NodeResult()
    if isinstance(value, NodeResult):
        return value
    if isinstance(value, dict) and value.keys() <= {"output", "action"} and value:
        action = value.get("action")
        if action is not None and not isinstance(action, str):
            raise TypeError(f"action must be a string, not {type(action).__name__}")
        return NodeResult(output=value.get("output"), action=action)
    raise TypeError(
        "a node must return a NodeResult, a dict {'output': ..., 'action': ...} or None, "
        f"not {type(value).__name__}"
    )


@dataclass(slots=True)
class ResolvedNode:
    """An implementation ready to call: ``invoke`` returns a value or an awaitable."""

    key: str
    invoke: Callable[[NodeContext], Any]
    instance: BaseNode | None = None
    is_async: bool = False


async def _run_class_node(node: BaseNode, ctx: NodeContext) -> Any:
    prepared = await node.prep(ctx)
    executed = await node.exec(prepared, ctx)
    return await node.post(prepared, executed, ctx)


def resolve(registry: Registry, key: str, params: Mapping[str, Any] | None = None) -> ResolvedNode:
    """Find the implementation for ``key``; class nodes are instantiated with the params."""
    try:
        impl = registry[key]
    except KeyError:
        raise UnknownImplementationError(f"no node implementation registered as {key!r}") from None
    if isinstance(impl, type) and issubclass(impl, BaseNode):
        instance = impl(params)

        def invoke(ctx: NodeContext, _node: BaseNode = instance) -> Awaitable[Any]:
            return _run_class_node(_node, ctx)

        return ResolvedNode(key=key, invoke=invoke, instance=instance, is_async=True)
    if isinstance(impl, BaseNode):
        node_instance = impl

        def invoke_instance(ctx: NodeContext) -> Awaitable[Any]:
            return _run_class_node(node_instance, ctx)

        return ResolvedNode(key=key, invoke=invoke_instance, instance=impl, is_async=True)
    if callable(impl):
        return ResolvedNode(key=key, invoke=impl, is_async=inspect.iscoroutinefunction(impl))
    raise UnknownImplementationError(f"registry entry {key!r} is not callable")
