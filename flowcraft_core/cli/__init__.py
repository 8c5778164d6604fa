"""The ``flowcraft`` command line (see :mod:`flowcraft_core.cli.main`).

``main`` is imported lazily so ``import flowcraft_core.cli`` stays cheap for code that only
wants the scaffold or the helpers.
"""

from __future__ import annotations


def main() -> None:
    """Entry point of the ``flowcraft`` console script."""
    from .main import main as run

    run()
