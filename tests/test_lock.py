"""``requirements.lock`` must be the resolved, hashed form of ``requirements.txt``.

The Lambda asset installs the lock (``pip install --require-hashes``), not ``requirements.txt``:
a requirement added, removed, re-pinned or given other extras without ``make lock`` would deploy
something else than the file says. These checks run offline. They compare the lock with
``requirements.txt`` and with the dependency closure of ``requirements.txt`` computed from the
metadata of the packages installed in this environment (the same pins), with markers evaluated
for the Lambda runtime (CPython 3.13 on Linux).
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from stacks import bundling

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "requirements.txt"
LOCK = ROOT / bundling.LOCK_FILE
#: The environment markers of the Lambda runtime the lock is resolved for.
LAMBDA_MARKERS = {
    "python_version": bundling.PYTHON_VERSION,
    "python_full_version": f"{bundling.PYTHON_VERSION}.0",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "os_name": "posix",
    "platform_machine": "aarch64",
}
STALE = "requirements.lock is stale: run `make lock`"


def requirements() -> list[Requirement]:
    lines = (line.split("#", 1)[0].strip() for line in REQUIREMENTS.read_text().splitlines())
    return [Requirement(line) for line in lines if line]


def lock_entries() -> dict[str, tuple[str, int, set[str]]]:
    """Locked package -> (version, number of hashes, what pulled it in)."""
    entries: dict[str, tuple[str, int, set[str]]] = {}
    current = ""
    for line in LOCK.read_text().splitlines():
        pinned = re.match(r"^([A-Za-z0-9._-]+)==(\S+)", line)
        if pinned:
            current = canonicalize_name(pinned.group(1))
            entries[current] = (pinned.group(2), 0, set())
        elif current and "--hash=sha256:" in line:
            version, hashes, via = entries[current]
            entries[current] = (version, hashes + 1, via)
        elif current and re.match(r"^\s+#\s+(via\s+)?\S", line):
            source = re.sub(r"^\s+#\s+(via\s+)?", "", line).strip()
            if source != "via":
                entries[current][2].add(source)
    return entries


def closure(roots: list[Requirement]) -> set[str]:
    """Every distribution ``roots`` need on the Lambda runtime, from installed metadata."""
    needed: set[str] = set()
    pending = [(requirement, "") for requirement in roots]
    while pending:
        requirement, extra = pending.pop()
        if requirement.marker and not requirement.marker.evaluate(
            {**LAMBDA_MARKERS, "extra": extra}
        ):
            continue
        name = canonicalize_name(requirement.name)
        extras = sorted(requirement.extras)
        key = name + "[" + ",".join(extras) + "]"
        if key in needed:
            continue
        needed.add(key)
        for text in metadata.requires(requirement.name) or []:
            dependency = Requirement(text)
            for active in ["", *extras]:
                pending.append((dependency, active))
    return {key.split("[", 1)[0] for key in needed}


def test_every_requirement_is_locked_at_its_pinned_version() -> None:
    locked = lock_entries()
    for requirement in requirements():
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{requirement.name} is not in the lock; {STALE}"
        version = locked[name][0]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{requirement.name} is locked at {version}, requirements.txt asks {requirement}; "
            f"{STALE}"
        )
        assert "-r requirements.txt" in locked[name][2], f"{requirement.name}: {STALE}"


def test_lock_has_nothing_requirements_txt_no_longer_asks_for() -> None:
    direct = {canonicalize_name(r.name) for r in requirements()}
    from_requirements = {
        name for name, (_, _, via) in lock_entries().items() if "-r requirements.txt" in via
    }
    assert from_requirements == direct, STALE


def test_lock_is_the_dependency_closure_of_requirements_txt() -> None:
    """Extras and transitive dependencies included, nothing more (markers as on Lambda)."""
    assert set(lock_entries()) == closure(requirements()), STALE


def test_every_locked_package_carries_hashes() -> None:
    entries = lock_entries()
    assert entries
    assert all(hashes for _, hashes, _ in entries.values())
    assert "make lock" in LOCK.read_text().splitlines()[1]  # the command that regenerates it
