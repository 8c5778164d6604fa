"""``pip install .`` gives ``flowcraft_core`` (typed, with its client and CLI) and ``flowcraft``.

The wheel is built from a copy of the sources (so the build leaves nothing in the checkout) and
its file list checked; the console script is checked through the installed entry point and by
running it from a folder outside the checkout. (A fresh virtualenv with every dependency takes
~25 s to install, too slow for the suite; this covers the same ground piece by piece.)
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from importlib.metadata import entry_points
from pathlib import Path

from click.testing import CliRunner

from flowcraft_core.cli.main import cli

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_the_library_typed_with_the_console_script(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "flowcraft_core", source / "flowcraft_core", ignore=shutil.ignore_patterns("*.pyc")
    )
    build = ["wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)]
    subprocess.run(
        [sys.executable, "-m", "pip", *build, str(source)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("flowcraft_aws-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    packages = {name.split("/")[0] for name in names if not name.startswith("flowcraft_aws-")}
    assert packages == {"flowcraft_core"}  # handlers/, local/, workflows/ stay in the repo
    for expected in (
        "flowcraft_core/py.typed",
        "flowcraft_core/aws/status_store.py",
        "flowcraft_core/distributed/worker.py",
        "flowcraft_core/builtins/sleep.py",
        "flowcraft_core/client/client.py",
        "flowcraft_core/cli/main.py",
        "flowcraft_core/cli/scaffold.py",
    ):
        assert expected in names
    info = {name.rsplit("/", 1)[-1]: name for name in names if ".dist-info/" in name}
    with zipfile.ZipFile(wheel) as archive:
        scripts = archive.read(info["entry_points.txt"]).decode()
        metadata = archive.read(info["METADATA"]).decode()
    assert "flowcraft = flowcraft_core.cli:main" in scripts
    for requirement in ("boto3", "pydantic", "click", "rich"):
        assert f"Requires-Dist: {requirement}" in metadata


def test_installed_entry_point_is_the_cli() -> None:
    (script,) = entry_points(group="console_scripts", name="flowcraft")
    assert script.value == "flowcraft_core.cli:main"
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in ("start", "get", "watch", "runs", "resume", "cancel", "redrive", "graph", "new"):
        assert f"  {command} " in result.output


def test_console_script_runs_from_any_folder(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "flowcraft"
    result = subprocess.run(
        [str(script), "new", "greeter"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "workflows" / "greeter.py").exists()
