"""Blueprints for the command line's drawings and progress counts, from the local app module.

The API reports a run's node statuses but not its blueprint's edges, so ``graph`` (and the
``3/7 nodes done`` of ``watch``) read the blueprint from the app module in the current folder
(``FLOWCRAFT_APP``, default ``workflows``): the same code that was deployed. Without it,
``graph`` still draws the run's nodes, coloured, without edges.
"""

from __future__ import annotations

import os

from ..analysis import diagram_statuses, generate_mermaid
from ..app import AppModuleError, load_app
from ..blueprint import WorkflowBlueprint, load_blueprint
from ..client.models import Run


def find_blueprint(blueprint_id: str) -> WorkflowBlueprint | None:
    try:
        app = load_app(search_path=os.getcwd(), check_blueprints=False)
    except AppModuleError:
        return None
    blueprint = app.blueprints.get(blueprint_id)
    if blueprint is None:
        return None
    try:
        return load_blueprint(blueprint)
    except Exception:
        return None


def diagram(run: Run) -> tuple[str, bool]:
    """(Mermaid text, whether it was drawn from the real blueprint)."""
    statuses = diagram_statuses(run.node_statuses, run.timeline or [])
    blueprint = find_blueprint(run.blueprint_id)
    if blueprint is not None:
        return generate_mermaid(blueprint, statuses), True
    nodes = [{"id": node_id, "uses": "unknown"} for node_id in statuses]
    sketch = load_blueprint({"id": run.blueprint_id, "nodes": nodes, "edges": []})
    return generate_mermaid(sketch, statuses), False
