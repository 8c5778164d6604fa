"""The tables other code relies on are listed once and documented: every environment variable
and every route appears in the README, and the local server serves exactly the routes."""

from __future__ import annotations

from pathlib import Path

from flowcraft_core.environment import CLIENT_VARIABLES, FLOWCRAFT_VARIABLES, REQUIRED
from flowcraft_core.routes import ROUTES, resources

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_variable_is_in_the_readme_settings() -> None:
    settings = README.split("## Settings", 1)[1].split("\n## ", 1)[0]
    for name in FLOWCRAFT_VARIABLES:
        assert f"`{name}`" in settings, name
    assert set(REQUIRED) <= set(FLOWCRAFT_VARIABLES)


def test_every_command_line_variable_is_in_the_readme() -> None:
    for name in CLIENT_VARIABLES:
        assert f"`{name}`" in README, name


def test_every_route_is_in_the_readme_and_served_locally() -> None:
    from local.api_server import RESOURCES

    for route in ROUTES:
        if route.path != "/openapi.json":
            assert f"`{route.method} {route.path}`" in README, route
    assert tuple(RESOURCES) == resources()


def test_the_api_function_serves_exactly_the_route_table() -> None:
    from handlers.api import app

    registered = app._static_routes + app._dynamic_routes
    served = {
        (route.method, route.path.replace("<", "{").replace(">", "}")) for route in registered
    }
    assert served == {(route.method, route.path) for route in ROUTES}


def test_the_packages_public_names_are_pinned() -> None:
    from flowcraft_core import analysis, expressions, scheduler

    assert set(expressions.__all__) == {
        "MAX_DEPTH",
        "MAX_EXPONENT",
        "MAX_INT",
        "MAX_NODES",
        "MAX_SEQUENCE",
        "MAX_SOURCE_LENGTH",
        "CompiledExpression",
        "ExpressionError",
        "compile_expression",
        "evaluate_expression",
        "is_truthy",
    }
    assert set(analysis.__all__) == {
        "BLOCKING_CODES",
        "InvalidBlueprint",
        "check_runnable",
        "BlueprintAnalysis",
        "BlueprintInput",
        "LintIssue",
        "LintResult",
        "Severity",
        "analyze_blueprint",
        "diagram_statuses",
        "generate_mermaid",
        "lint_blueprint",
    }
    assert set(scheduler.__all__) == {
        "READY",
        "SKIP",
        "WAIT",
        "CompiledEdge",
        "CompiledGraph",
        "EdgeKind",
        "ExecutionLimitError",
        "GraphError",
        "Loop",
        "LoopLimitError",
        "Scheduler",
        "Settlement",
        "apply_transform",
        "choose_edges",
        "decision_key",
        "decision_source",
        "edge_failure_message",
        "failing_edge",
        "instance_key",
        "join_verdict",
        "latest_by_node",
        "pick_waiting_key",
        "split_decision_key",
        "split_key",
        "statuses_by_node",
        "target_iteration",
    }
    for module in (analysis, expressions, scheduler):
        for name in module.__all__:
            assert getattr(module, name) is not None


def test_the_demo_and_stack_packages_public_names_are_pinned() -> None:
    import local.demo
    import stacks

    assert set(local.demo.__all__) == {
        "Api",
        "ApiError",
        "EXAMPLES",
        "Example",
        "RequestLedger",
        "RunReport",
        "api_role",
        "build_parser",
        "check",
        "describe",
        "main",
        "run_diagram_statuses",
        "run_example",
        "write_diagram",
    }
    assert set(stacks.__all__) == {"FlowcraftStack", "Settings", "StackSettingsError"}
    for module in (local.demo, stacks):
        for name in module.__all__:
            assert getattr(module, name) is not None


def test_the_package_exports_every_name_it_lists() -> None:
    import flowcraft_core

    assert set(flowcraft_core.__all__) == set(flowcraft_core._HOMES)
    for name in flowcraft_core.__all__:
        assert getattr(flowcraft_core, name) is not None
