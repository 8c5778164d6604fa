"""Running one node: attempts, timeout, retries with backoff, fallback, middleware and events.

Both drivers execute nodes through this module: one attempt is ``attempt_once``, and what
follows a failed attempt is ``handle_failure`` (the recover hook, then retry, fallback or
failure). The in-memory runtime applies it in ``execute_with_policy`` by sleeping; the
distributed worker by queueing the next attempt.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .blueprint import NodeConfig, NodeDefinition
from .errors import FlowcraftError
from .nodes import (
    BaseNode,
    CancelledRunError,
    NodeContext,
    NodeResult,
    Registry,
    ResolvedNode,
    UnknownImplementationError,
    resolve,
    to_node_result,
)
from .status import AWAITING, CANCELLED, COMPLETED, FAILED


# --------------------------------------------------------------------------- clock
class Clock(Protocol):
    """Time source; tests pass a fake one so retries and sleeps never really wait."""

    def now(self) -> float: ...
    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        if seconds > 0:
            await asyncio.sleep(seconds)


# --------------------------------------------------------------------------- events
@dataclass(slots=True)
class FlowEvent:
    """Something that happened in a run (``type`` such as ``node:start``, ``edge:decided``)."""

    type: str
    run_id: str
    node_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    timestamp: float = 0.0


class EventBus(Protocol):
    def emit(self, event: FlowEvent) -> Any: ...


class CollectingEventBus:
    """Keeps every event in order; handy in tests and for the demo's timeline."""

    def __init__(self) -> None:
        self.events: list[FlowEvent] = []

    def emit(self, event: FlowEvent) -> None:
        self.events.append(event)

    def types(self) -> list[str]:
        return [e.type for e in self.events]


# --------------------------------------------------------------------------- middleware
CallNext = Callable[[], Awaitable[NodeResult]]


class Middleware:
    """Hooks around every node. Override any of ``before``, ``after``, ``around``."""

    async def before(self, ctx: NodeContext) -> None:
        return None

    async def after(self, ctx: NodeContext, result: NodeResult) -> None:
        return None

    async def around(self, ctx: NodeContext, call_next: CallNext) -> NodeResult:
        return await call_next()


class ExecutionServices(Protocol):
    """What built-in nodes ask of the driver running them (sleep, subflows, maps)."""

    registry: Registry
    blueprints: Mapping[str, Any]
    clock: Clock

    async def sleep(self, ctx: NodeContext, seconds: float) -> None: ...
    async def map_items(self, ctx: NodeContext, spec: Any) -> list[Any]: ...
    async def run_subflow(
        self, ctx: NodeContext, blueprint_id: str, context: dict[str, Any]
    ) -> Any: ...


# --------------------------------------------------------------------------- outcomes
@dataclass(slots=True)
class NodeOutcome:
    status: str  # completed | failed | awaiting | cancelled
    result: NodeResult | None = None
    error: str | None = None
    attempts: int = 1


class NodeTimeoutError(FlowcraftError, TimeoutError):
    """An attempt ran out of time. A sync node's thread cannot be stopped: ``leftover`` is
    its still-running call, which the next attempt waits for, so attempts never overlap."""

    def __init__(self, message: str, leftover: asyncio.Future[Any] | None = None) -> None:
        super().__init__(message)
        self.leftover = leftover


@dataclass(frozen=True, slots=True)
class NextAttempt:
    """What the attempt policy says after a failed attempt: retry (``attempt``, after
    ``delay`` seconds) or, when ``attempt`` is None, attempts are spent (fallback, else fail)."""

    attempt: int | None
    delay: float = 0.0


def after_failure(config: NodeConfig, failed_attempt: int) -> NextAttempt:
    """The attempt policy, once for both drivers: ``maxRetries`` retries after the first
    attempt, each after ``retryDelay`` grown by ``backoff``; then the fallback or failure. The
    in-memory driver applies it by looping and sleeping, the distributed one by queueing."""
    if failed_attempt <= config.max_retries:
        return NextAttempt(failed_attempt + 1, retry_delay_seconds(config, failed_attempt))
    return NextAttempt(None)


def retry_delay_seconds(config: NodeConfig, failed_attempt: int) -> float:
    """Delay before the attempt after ``failed_attempt`` (1-based): exponential backoff."""
    if config.retry_delay <= 0:
        return 0.0
    return config.retry_delay / 1000.0 * (config.backoff ** (failed_attempt - 1))


def describe_error(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


async def _call(resolved: ResolvedNode, ctx: NodeContext, timeout_ms: float | None) -> Any:
    if timeout_ms is None:
        value = resolved.invoke(ctx)
        if inspect.isawaitable(value):
            value = await value
        return value
    seconds = timeout_ms / 1000.0
    if resolved.is_async:
        try:
            return await asyncio.wait_for(resolved.invoke(ctx), seconds)
        except TimeoutError:
            raise NodeTimeoutError(f"timed out after {timeout_ms:g} ms") from None
    thread: asyncio.Future[Any] = asyncio.ensure_future(asyncio.to_thread(resolved.invoke, ctx))
    try:
        value = await asyncio.wait_for(asyncio.shield(thread), seconds)
    except TimeoutError:
        raise NodeTimeoutError(f"timed out after {timeout_ms:g} ms", thread) from None
    if inspect.isawaitable(value):
        value = await value
    return value


async def attempt_once(
    resolved: ResolvedNode,
    ctx: NodeContext,
    config: NodeConfig,
    middleware: Sequence[Middleware] = (),
) -> NodeResult:
    """One attempt of a node (with middleware and timeout); raises what the node raised."""
    if not middleware:
        return to_node_result(await _call(resolved, ctx, config.timeout))

    async def innermost() -> NodeResult:
        return to_node_result(await _call(resolved, ctx, config.timeout))

    call: CallNext = innermost
    for mw in reversed(middleware):
        call = _wrap(mw, ctx, call)
    for mw in middleware:
        await mw.before(ctx)
    # ``around`` may answer in any of the shapes a node may (a dict, None, a NodeResult).
    result = to_node_result(await call())
    for mw in reversed(middleware):
        await mw.after(ctx, result)
    return result


def _wrap(mw: Middleware, ctx: NodeContext, call_next: CallNext) -> CallNext:
    async def wrapped() -> NodeResult:
        return await mw.around(ctx, call_next)

    return wrapped


def fallback_failed(message: str, node: NodeDefinition, error: BaseException) -> str:
    """How a failure reads when the node's fallback failed too (the same in both drivers)."""
    which = node.config.fallback or "method"
    return f"{message}; fallback {which} failed: {describe_error(error)}"


async def run_fallback(
    node: NodeDefinition,
    resolved: ResolvedNode,
    ctx: NodeContext,
    error: BaseException,
    registry: Registry,
) -> NodeResult | None:
    """Run the node's fallback once attempts are spent; None when it has none.

    ``config.fallback`` (a registry key run with the same input) wins; otherwise a ``BaseNode``
    that overrides ``fallback`` recovers itself.
    """
    if node.config.fallback:
        fallback = resolve(registry, node.config.fallback, node.params)
        return to_node_result(await _call(fallback, ctx, node.config.timeout))
    instance = resolved.instance
    if instance is not None and type(instance).fallback is not BaseNode.fallback:
        prepared = await instance.prep(ctx)
        return to_node_result(await instance.fallback(prepared, error, ctx))
    return None


async def recover(resolved: ResolvedNode, error: BaseException, ctx: NodeContext) -> None:
    if resolved.instance is not None and type(resolved.instance).recover is not BaseNode.recover:
        await resolved.instance.recover(error, ctx)


Emit = Callable[[str, dict[str, Any]], None]


async def fall_back(
    node: NodeDefinition,
    resolved: ResolvedNode,
    ctx: NodeContext,
    error: BaseException,
    registry: Registry,
    message: str,
) -> NodeResult | str:
    """Attempts are spent: the fallback's result, or the message the node fails with
    (``message``, naming the fallback's own failure when it raised)."""
    try:
        recovered = await run_fallback(node, resolved, ctx, error, registry)
    except Exception as fallback_exc:
        return fallback_failed(message, node, fallback_exc)
    return message if recovered is None else recovered


@dataclass(frozen=True)
class AfterFailure:
    """What follows a failed attempt once the node's hooks ran: the next attempt (``retry``),
    the fallback's ``result``, or failure with ``message``; ``cancelled`` when the run was
    cancelled meanwhile."""

    retry: NextAttempt | None = None
    result: NodeResult | None = None
    message: str = ""
    cancelled: bool = False


async def handle_failure(
    node: NodeDefinition,
    resolved: ResolvedNode | None,
    ctx: NodeContext,
    error: BaseException,
    registry: Registry,
    *,
    emit: Emit | None = None,
) -> AfterFailure:
    """The attempt policy after attempt ``ctx.attempt`` failed, with the node's hooks, once for
    both drivers: ``recover`` (a class node's clean-up), then a retry after its delay, else the
    fallback, else failure. Memory applies a retry by sleeping, the distributed driver by
    queueing. ``resolved`` is None for work that is not a node of its own (a map item's
    sub-blueprint): no hooks, no fallback."""
    if resolved is not None:
        try:
            await recover(resolved, error, ctx)
        except Exception as recover_exc:
            message = f"{describe_error(error)}; recover failed: {describe_error(recover_exc)}"
            return AfterFailure(message=message)
    if ctx.signal.cancelled:
        return AfterFailure(cancelled=True)
    following = after_failure(node.config, ctx.attempt)
    if following.attempt is not None:
        return AfterFailure(retry=following)
    if resolved is None:
        return AfterFailure(message=describe_error(error))
    outcome = await fall_back(node, resolved, ctx, error, registry, describe_error(error))
    if isinstance(outcome, str):
        return AfterFailure(message=outcome)
    if emit is not None:
        emit("node:fallback", {"error": describe_error(error), "fallback": node.config.fallback})
    return AfterFailure(result=outcome)


async def execute_with_policy(
    node: NodeDefinition,
    ctx: NodeContext,
    registry: Registry,
    *,
    clock: Clock,
    middleware: Sequence[Middleware] = (),
    emit: Emit | None = None,
    resolved: ResolvedNode | None = None,
    failed_first: BaseException | None = None,
) -> NodeOutcome:
    """Attempts, retries (with delay and backoff), then fallback: the in-process policy.

    ``failed_first`` is the error of a first attempt the caller already made itself.
    """
    if resolved is None:
        try:
            resolved = resolve(registry, node.uses, node.params)
        except UnknownImplementationError as exc:
            return NodeOutcome(status=FAILED, error=str(exc), attempts=0)
    attempt = 1
    error = failed_first
    while True:
        ctx.attempt = attempt
        if error is None:
            try:
                result = await attempt_once(resolved, ctx, node.config, middleware)
            except CancelledRunError:
                return NodeOutcome(status=CANCELLED, attempts=attempt)
            except Exception as raised:
                error = raised
            else:
                status = AWAITING if result.awaiting else COMPLETED
                return NodeOutcome(status=status, result=result, attempts=attempt)
        failure, error = error, None
        if isinstance(failure, CancelledRunError):
            return NodeOutcome(status=CANCELLED, attempts=attempt)
        after = await handle_failure(node, resolved, ctx, failure, registry, emit=emit)
        if after.cancelled:
            return NodeOutcome(status=CANCELLED, attempts=attempt)
        if after.result is not None:
            return NodeOutcome(status=COMPLETED, result=after.result, attempts=attempt)
        if after.retry is None or after.retry.attempt is None:
            return NodeOutcome(status=FAILED, error=after.message, attempts=attempt)
        await _wait_to_retry(failure, after.retry.delay, attempt, clock, emit)
        attempt = after.retry.attempt
        # Each attempt sees its own number, even if an earlier one is still finishing.
        ctx = dataclasses.replace(ctx, attempt=attempt)


async def _wait_to_retry(
    failure: BaseException, delay: float, attempt: int, clock: Clock, emit: Emit | None
) -> None:
    """Announce the retry, wait its delay, and let a timed-out attempt's thread finish."""
    if emit is not None:
        emit("node:retry", {"attempt": attempt, "error": describe_error(failure), "delay": delay})
    await clock.sleep(delay)
    if isinstance(failure, NodeTimeoutError) and failure.leftover is not None:
        # A timed-out sync attempt still runs in its thread: never overlap attempts.
        await asyncio.gather(failure.leftover, return_exceptions=True)
