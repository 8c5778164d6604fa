"""Build the Lambda code asset on the host with pip, without Docker (``LocalBundler``).

Why, and what the asset holds: docs/deploy.md, "The Lambda artifact".
"""

from __future__ import annotations

import fnmatch
import functools
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

#: The packages that make up the application inside the asset.
PACKAGES: tuple[str, ...] = ("flowcraft_core", "handlers", "workflows")
#: Lambda's Python runtime. Wheels and bytecode are built for exactly this version.
PYTHON_VERSION = "3.13"
#: Bump when the bundle layout changes so that stale caches and assets are not reused.
BUNDLE_FORMAT = "2"
#: The hashed lock of ``requirements.txt`` that the asset installs (``make lock`` writes it).
LOCK_FILE = "requirements.lock"

#: Names never copied from the source packages (matched against each file or folder name).
EXCLUDED_NAMES: tuple[str, ...] = (
    ".*",  # dot-files and dot-folders: .venv, .mypy_cache, .DS_Store, ...
    "__pycache__",
    "*.pyc",
    "*.pyo",
    "tests",
    "test",
    "test_*.py",
    "*_test.py",
    "conftest.py",
    "venv",
    "node_modules",
    "*.egg-info",
)


def is_excluded(name: str) -> bool:
    """True when a file or folder name must stay out of the asset."""
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in EXCLUDED_NAMES)


def _ignore(_directory: str, names: list[str]) -> set[str]:
    return {name for name in names if is_excluded(name)}


def iter_source_files(root: Path, packages: Sequence[str] = PACKAGES) -> Iterator[Path]:
    """Every file of the packages that goes into the asset, in a stable order."""
    for package in packages:
        base = root / package
        if not base.is_dir():
            continue
        for directory, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if not is_excluded(d))
            for filename in sorted(filenames):
                if not is_excluded(filename):
                    yield Path(directory) / filename


def pip_install_command(
    requirements: Path, target: Path, *, platform: str, python: str = sys.executable
) -> list[str]:
    """The pip invocation that installs Lambda-compatible wheels into ``target`` from a lock.

    ``--require-hashes`` makes pip refuse any file whose sha256 is not in the lock and any
    dependency the lock does not pin. ``--only-binary=:all:`` is what makes ``--platform`` safe:
    pip refuses to build sdists for the host. ``--no-compile`` because pip would write bytecode
    for the host's Python (3.11), which Lambda's 3.13 never reads; we compile with 3.13
    afterwards.
    """
    return [
        python,
        "-m",
        "pip",
        "install",
        "--requirement",
        str(requirements),
        "--require-hashes",
        "--target",
        str(target),
        "--platform",
        platform,
        "--python-version",
        PYTHON_VERSION,
        "--implementation",
        "cp",
        "--only-binary=:all:",
        "--no-compile",
        "--quiet",
        "--disable-pip-version-check",
    ]


@functools.cache
def find_runtime_python() -> str | None:
    """A working ``python3.13`` (the Lambda runtime's version), or None.

    A pyenv shim can be on PATH yet refuse to run when that version is not selected, so each
    candidate is executed once rather than trusted because it exists. Cached per process.
    """
    name = f"python{PYTHON_VERSION}"
    candidates: list[str] = []
    if f"{sys.version_info.major}.{sys.version_info.minor}" == PYTHON_VERSION:
        candidates.append(sys.executable)
    found = shutil.which(name)
    if found:
        candidates.append(found)
    pyenv_root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    candidates += sorted(glob.glob(f"{pyenv_root}/versions/{PYTHON_VERSION}*/bin/{name}"))
    for candidate in candidates:
        try:
            result = subprocess.run(
                [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if result.returncode == 0 and result.stdout.strip() == PYTHON_VERSION:
            return candidate
    return None


def compile_command(python: str, folder: Path) -> list[str]:
    """``compileall`` with hash-based, unchecked pycs: valid whatever the files' mtimes are."""
    return [
        python,
        "-m",
        "compileall",
        "-q",
        "--invalidation-mode",
        "unchecked-hash",
        str(folder),
    ]


def _link_or_copy(source: str, destination: str) -> object:
    """Hard-link cached dependency files into the asset (fast); copy across file systems."""
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)
    return destination


@dataclass(frozen=True)
class BundleSpec:
    """Everything that determines the content of the asset."""

    project_root: Path
    platform: str
    bundle_dependencies: bool
    packages: tuple[str, ...] = PACKAGES
    requirements_file: str = LOCK_FILE

    @property
    def requirements(self) -> Path:
        return self.project_root / self.requirements_file

    def dependency_key(self, compiler: str | None) -> str:
        """Cache key of the installed dependencies: the lock (resolved versions and file
        hashes), the platform, the bytecode version."""
        digest = hashlib.sha256()
        for part in (BUNDLE_FORMAT, self.platform, PYTHON_VERSION, str(bool(compiler))):
            digest.update(part.encode() + b"\0")
        digest.update(self.requirements.read_bytes())
        return digest.hexdigest()[:16]

    def cache_dir(self, compiler: str | None) -> Path:
        return self.project_root / ".build" / f"lambda-{self.dependency_key(compiler)}" / "deps"

    def asset_hash(self) -> str:
        """Hash of every input of the asset, so CDK rebuilds exactly when one changes."""
        digest = hashlib.sha256()
        header = (BUNDLE_FORMAT, self.platform, PYTHON_VERSION, str(self.bundle_dependencies))
        for part in header:
            digest.update(part.encode() + b"\0")
        if self.bundle_dependencies:
            digest.update(self.requirements.read_bytes())
            # With or without bytecode are different assets: installing python3.13 later
            # must produce a new asset rather than reuse the staged one without .pyc files.
            digest.update(str(find_runtime_python() is not None).encode() + b"\0")
        for path in iter_source_files(self.project_root, self.packages):
            digest.update(path.relative_to(self.project_root).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
        return digest.hexdigest()


def copy_packages(root: Path, output: Path, packages: Iterable[str] = PACKAGES) -> list[str]:
    """Copy the application packages into ``output``; return the ones that exist."""
    copied: list[str] = []
    for package in packages:
        source = root / package
        if source.is_dir():
            shutil.copytree(source, output / package, ignore=_ignore, dirs_exist_ok=True)
            copied.append(package)
    return copied


def ensure_dependencies(spec: BundleSpec, compiler: str | None) -> Path:
    """Install the requirements into the cache once; later bundles reuse that folder.

    pip writes into a temporary sibling that is renamed into place at the end, so an
    interrupted install never leaves a half-filled cache behind.
    """
    cache = spec.cache_dir(compiler)
    if cache.is_dir():
        return cache
    cache.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="deps-", dir=cache.parent))
    try:
        subprocess.run(
            pip_install_command(spec.requirements, staging, platform=spec.platform), check=True
        )
        shutil.rmtree(staging / "bin", ignore_errors=True)  # console scripts: useless in Lambda
        if compiler and subprocess.run(compile_command(compiler, staging)).returncode:
            # A third-party file that does not compile (e.g. a deliberately broken test
            # fixture) loses its bytecode, nothing more; our own sources must compile.
            warnings.warn("some dependency files did not compile to bytecode", stacklevel=2)
        try:
            staging.rename(cache)
        except OSError:
            if not cache.is_dir():  # a concurrent build did not win the race either
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return cache


def build_bundle(spec: BundleSpec, output: Path) -> None:
    """Write the complete asset into ``output`` (an empty folder CDK created)."""
    if spec.bundle_dependencies:
        missing = [p for p in spec.packages if not (spec.project_root / p).is_dir()]
        if missing:
            raise FileNotFoundError(
                f"cannot bundle the Lambda code: package folder(s) {', '.join(missing)} "
                f"missing under {spec.project_root}"
            )
        compiler = find_runtime_python()
        if compiler is None:
            warnings.warn(
                f"python{PYTHON_VERSION} not found: the Lambda asset ships without bytecode "
                f"(.pyc from Python {sys.version_info.major}.{sys.version_info.minor} would not "
                "match the runtime), so cold starts compile on every import",
                stacklevel=2,
            )
        cache = ensure_dependencies(spec, compiler)
        shutil.copytree(cache, output, copy_function=_link_or_copy, dirs_exist_ok=True)
    else:
        compiler = None  # sources only: the fast path for tests and template-only synths
    copy_packages(spec.project_root, output, spec.packages)
    if compiler:
        for package in spec.packages:
            if (output / package).is_dir():
                subprocess.run(compile_command(compiler, output / package), check=True)


@jsii.implements(ILocalBundling)
class LocalBundler:
    """The jsii bridge: CDK calls ``try_bundle`` instead of running a Docker image."""

    def __init__(self, spec: BundleSpec) -> None:
        self.spec = spec

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_options: Any) -> bool:
        """Build into ``output_dir``; True tells CDK that no Docker run is needed."""
        build_bundle(self.spec, Path(output_dir))
        return True


def lambda_code(spec: BundleSpec) -> lambda_.AssetCode:
    """One asset for all three functions (same packages, different handler strings)."""
    return lambda_.Code.from_asset(
        str(spec.project_root),
        asset_hash_type=AssetHashType.CUSTOM,
        asset_hash=spec.asset_hash(),
        bundling=BundlingOptions(
            # Never pulled: LocalBundler always succeeds, and CDK only falls back to Docker
            # when the local bundler returns False.
            image=DockerImage.from_registry("unused"),
            local=LocalBundler(spec),
        ),
    )
