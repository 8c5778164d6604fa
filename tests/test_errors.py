"""Every error Flowcraft raises for a caller derives from one root, and keeps its old base."""

from __future__ import annotations

import pytest

from flowcraft_core import FlowcraftError
from flowcraft_core.app import AppModuleError
from flowcraft_core.aws.run_listing import InvalidPageToken
from flowcraft_core.aws.settings import SettingsError
from flowcraft_core.blueprint import BlueprintError
from flowcraft_core.builtins.map import MapItemError
from flowcraft_core.builtins.subflow import SubflowError
from flowcraft_core.client.errors import ApiError, ConfigurationError
from flowcraft_core.distributed.errors import (
    EdgeFailed,
    InvalidBlueprint,
    InvalidResume,
    RunConflict,
    RunNotFound,
    UnknownBlueprint,
    UnknownWebhook,
    WebhookRefused,
)
from flowcraft_core.distributed.payloads import PayloadsUnavailable, ValueTooLarge
from flowcraft_core.distributed.storable import NotStorable
from flowcraft_core.durations import DurationError
from flowcraft_core.engine import NodeTimeoutError
from flowcraft_core.expressions import ExpressionError
from flowcraft_core.nodes import CancelledRunError, UnknownImplementationError
from flowcraft_core.scheduler import ExecutionLimitError, GraphError, LoopLimitError
from stacks.settings import StackSettingsError


@pytest.mark.parametrize(
    ("error", "old_base"),
    [
        (AppModuleError, RuntimeError),
        (InvalidPageToken, ValueError),
        (SettingsError, RuntimeError),
        (BlueprintError, ValueError),
        (MapItemError, RuntimeError),
        (SubflowError, RuntimeError),
        (ApiError, Exception),
        (ConfigurationError, Exception),
        (EdgeFailed, ValueError),
        (InvalidBlueprint, ValueError),
        (InvalidResume, ValueError),
        (RunConflict, RuntimeError),
        (RunNotFound, LookupError),
        (UnknownBlueprint, LookupError),
        (UnknownWebhook, LookupError),
        (WebhookRefused, PermissionError),
        (PayloadsUnavailable, ValueError),
        (ValueTooLarge, ValueError),
        (NotStorable, ValueError),
        (DurationError, ValueError),
        (NodeTimeoutError, TimeoutError),
        (ExpressionError, ValueError),
        (CancelledRunError, Exception),
        (UnknownImplementationError, LookupError),
        (ExecutionLimitError, RuntimeError),
        (GraphError, ValueError),
        (LoopLimitError, RuntimeError),
        (StackSettingsError, ValueError),
    ],
)
def test_errors_share_one_root_and_keep_their_base(error: type, old_base: type) -> None:
    assert issubclass(error, FlowcraftError)
    assert issubclass(error, old_base)


def test_one_except_catches_what_a_run_raises() -> None:
    from tests.distributed_harness import Harness

    with pytest.raises(FlowcraftError, match="run 'r1' does not exist"):
        Harness().client.get("r1")


#: Raised and caught inside the drivers, never by a caller: plain exceptions on purpose.
CONTROL_FLOW = {
    "CommitRejected",
    "ConditionFailed",
    "DeferJob",
    "FanOut",
    "ItemTooLarge",
    "StartChild",
    "Suspend",
    "_OpError",
}


def test_every_error_the_package_defines_derives_from_the_root() -> None:
    import importlib
    import inspect
    import pkgutil

    import flowcraft_core

    found: dict[str, type] = {}
    for module in pkgutil.walk_packages(flowcraft_core.__path__, "flowcraft_core."):
        if module.name.startswith("flowcraft_core.cli"):
            continue  # needs the optional CLI extras; its errors are click's
        loaded = importlib.import_module(module.name)
        for name, value in vars(loaded).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == loaded.__name__
            ):
                found[name] = value
    outside = {name for name, error in found.items() if not issubclass(error, FlowcraftError)}
    assert outside == CONTROL_FLOW
    assert len(found) > len(CONTROL_FLOW) + 20  # the walk reached the package
