"""``flowcraft new NAME``: the files it writes run as they are, in memory and as an app module."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from flowcraft_core import FlowRuntime, lint_blueprint
from flowcraft_core.app import load_app
from flowcraft_core.cli.main import cli
from flowcraft_core.cli.scaffold import ScaffoldError, scaffold


def test_new_project_gets_an_app_package_a_workflow_and_a_passing_test(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["new", "invoice", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "workflows" / "__init__.py").exists()
    assert "flowcraft start invoice --context" in result.output
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "2 passed" in tests.stdout


def test_scaffolded_code_passes_the_projects_own_checks(tmp_path: Path) -> None:
    """In this repository ``make test`` runs ruff and mypy over workflows/ and tests/ too."""
    scaffold("send_a_rather_long_invoice_reminder", tmp_path, "workflows")
    ruff = Path(sys.executable).parent / "ruff"
    config = str(Path(__file__).resolve().parents[1] / "pyproject.toml")
    for command in (["check"], ["format", "--check"]):
        checked = subprocess.run(
            [str(ruff), *command, "--config", config, "."],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_scaffolded_workflow_joins_an_existing_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scaffold("first", tmp_path, "shopapp")
    scaffold("second", tmp_path, "shopapp")
    monkeypatch.syspath_prepend(str(tmp_path))
    app = load_app("shopapp")
    assert set(app.blueprints) == {"first", "second"}
    assert lint_blueprint(app.blueprints["second"], app.registry).issues == []
    result = asyncio.run(
        FlowRuntime(app.registry, blueprints=app.blueprints).run("second", {"name": "Lin"})
    )
    assert result.outputs["finish"] == {"done": True, "greeting": "Hello, Lin!"}
    for name in [m for m in sys.modules if m == "shopapp" or m.startswith("shopapp.")]:
        del sys.modules[name]


def test_names_are_checked_and_nothing_is_overwritten(tmp_path: Path) -> None:
    with pytest.raises(ScaffoldError, match="lowercase Python identifier"):
        scaffold("Send-Invoice", tmp_path, "workflows")
    with pytest.raises(ScaffoldError, match="lowercase Python identifier"):
        scaffold("class", tmp_path, "workflows")
    scaffold("once", tmp_path, "workflows")
    result = CliRunner().invoke(cli, ["new", "once", "--dir", str(tmp_path)])
    assert result.exit_code == 2 and "not overwriting" in result.output


def test_an_app_that_lists_its_workflows_by_hand_gets_told_what_to_add(tmp_path: Path) -> None:
    (tmp_path / "handmade").mkdir()
    (tmp_path / "handmade" / "__init__.py").write_text("blueprints = {}\nregistry = {}\n")
    result = scaffold("extra", tmp_path, "handmade")
    assert any("add extra.BLUEPRINT" in line for line in result.next_steps)
