#!/usr/bin/env python3
"""CDK app entry point (``cdk.json`` runs it): settings from context, the stack, cdk-nag.

``build_app`` is also what ``tests/test_stack.py`` synthesizes, so the tests check exactly the
wiring the CLI deploys, AwsSolutions checks included.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from stacks import FlowcraftStack, Settings, StackSettingsError

PROJECT_ROOT = Path(__file__).resolve().parent


def build_app(
    context: Mapping[str, Any] | None = None, *, outdir: str | None = None
) -> tuple[cdk.App, FlowcraftStack]:
    """One app with one Flowcraft stack, named after ``flowcraft:prefix`` (or ``stackName``).

    AwsSolutions checks run at synthesis: an unacknowledged finding makes ``synth`` raise, so
    a regression in the stack's security posture stops the deploy rather than slipping in.
    """
    app = cdk.App(context=dict(context) if context is not None else None, outdir=outdir)
    settings = Settings.from_context(app.node.get_all_context())
    stack = FlowcraftStack(
        app, settings.resolved_stack_name, settings=settings, project_root=PROJECT_ROOT
    )
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app, stack


def main() -> None:
    try:
        app, _ = build_app()
    except StackSettingsError as error:
        sys.exit(f"flowcraft: invalid context: {error}")
    app.synth()


if __name__ == "__main__":
    main()
