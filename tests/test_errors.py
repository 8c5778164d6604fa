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
    with pytest.raises(FlowcraftError, match="run 'r1' does not exist"):
        raise RunNotFound("r1")
