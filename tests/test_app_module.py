"""The app module (``FLOWCRAFT_APP``): discovered workflows, and clear start-up failures.

A missing module, a module that raises on import, a missing name or a blueprint that does not
load must stop ``python -m local up`` and a Lambda cold start with a message naming the module
and the error, before any request is served.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowcraft_core.app import AppModuleError, discover, load_app
from handlers import config
from local.__main__ import main as local_main
from local.stack import LocalStack


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty folder on sys.path; modules imported from it are forgotten afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_missing_module_is_named() -> None:
    with pytest.raises(AppModuleError, match=r"FLOWCRAFT_APP='no_such_app' cannot be imported"):
        load_app("no_such_app")


def test_error_inside_the_module_names_file_and_line(project: Path) -> None:
    write(project, "brokenapp/__init__.py", "blueprints = {}\nregistry = {}\nx = undefined_name\n")
    with pytest.raises(AppModuleError) as error:
        load_app("brokenapp")
    message = str(error.value)
    assert message.startswith("FLOWCRAFT_APP='brokenapp' failed while importing: NameError")
    assert "undefined_name" in message and "__init__.py, line 3" in message


def test_missing_import_inside_the_module_is_not_called_a_missing_app(project: Path) -> None:
    write(project, "needsdep.py", "import not_installed_dep\n")
    with pytest.raises(AppModuleError, match="failed while importing: ModuleNotFoundError"):
        load_app("needsdep")


def test_missing_names_and_bad_blueprints_are_refused(project: Path) -> None:
    write(project, "nameless.py", "registry = {}\n")
    with pytest.raises(AppModuleError, match="must define `blueprints`"):
        load_app("nameless")
    write(project, "badbp.py", "registry = {}\nblueprints = {'x': {'id': 'x', 'nodes': 3}}\n")
    with pytest.raises(AppModuleError, match="blueprint 'x' does not load"):
        load_app("badbp")


def test_local_up_refuses_a_broken_app_before_starting_anything(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FLOWCRAFT_APP", "workflowz")
    stack = LocalStack(api_port=0)
    with pytest.raises(AppModuleError, match="workflowz"):
        stack.start()
    assert stack.emulator is None and stack.api_server is None
    assert local_main(["up", "--api-port", "0"]) == 2
    assert "python -m local up: FLOWCRAFT_APP='workflowz' cannot be imported" in (
        capsys.readouterr().err
    )


def test_lambda_cold_start_checks_the_app_module() -> None:
    inside = {"AWS_LAMBDA_FUNCTION_NAME": "flowcraft-worker", "FLOWCRAFT_APP": "workflowz"}
    with pytest.raises(config.ConfigError, match="FLOWCRAFT_APP='workflowz' cannot be imported"):
        config.check_app_at_cold_start(inside)
    config.check_app_at_cold_start({"FLOWCRAFT_APP": "workflowz"})  # outside Lambda: later
    config.check_app_at_cold_start({**inside, "FLOWCRAFT_APP": "workflows"})


def test_discover_collects_every_workflow_module_of_a_package(project: Path) -> None:
    write(project, "myapp/__init__.py", "")
    write(project, "myapp/_helpers.py", "BLUEPRINT = {'id': 'hidden'}\nREGISTRY = {}\n")
    write(project, "myapp/notes.py", "TEXT = 'not a workflow'\n")
    write(
        project,
        "myapp/hello.py",
        "BLUEPRINT = {'id': 'hello', 'nodes': [{'id': 'a', 'uses': 'hello.a'}]}\n"
        "REGISTRY = {'hello.a': print}\nSAMPLE_CONTEXT = {'n': 1}\n"
        "EXTRA_BLUEPRINTS = ({'id': 'child', 'nodes': []},)\n",
    )
    found = discover("myapp")
    assert list(found.blueprints) == ["hello", "child"]
    assert found.registry == {"hello.a": print}
    assert found.sample_contexts == {"hello": {"n": 1}}
    write(project, "myapp/twice.py", "BLUEPRINT = {'id': 'hello'}\nREGISTRY = {}\n")
    with pytest.raises(ValueError, match="blueprint id 'hello' is defined twice"):
        discover("myapp")
