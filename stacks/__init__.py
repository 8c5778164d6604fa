"""CDK infrastructure for Flowcraft (no runtime logic; the stack never imports handlers)."""

from .flowcraft_stack import FlowcraftStack
from .settings import Settings, StackSettingsError

__all__ = ["FlowcraftStack", "Settings", "StackSettingsError"]
