"""Cold-start cost of the Lambda handlers: fresh Python processes, median wall time.

A Lambda cold start pays for importing the handler module (the INIT phase) and, in the first
invocation, for what the handlers build lazily (settings, app module, ``SqsAdapter`` with its
boto3 clients). Both are measured here, each as the median of ``--runs`` fresh processes minus
the median of ``python -c pass``, against ``import boto3`` (and ``import boto3`` plus two
clients) as the reference every boto3-based function pays anyway.

Nothing here calls AWS: the ``FLOWCRAFT_*`` values are dummies and creating boto3 clients makes
no request. ``POWERTOOLS_TRACE_DISABLED=true`` as in a stack without tracing (with tracing on,
the X-Ray SDK adds ~250 ms). Bytecode is compiled by a warm-up run first, as Lambda ships it
precompiled. Figures are printed, never asserted::

    .venv/bin/python bench/coldstart.py [--runs 7] [--app workflows] [--importtime]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

DUMMY_ENVIRONMENT = {
    "FLOWCRAFT_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/flowcraft-jobs",
    "FLOWCRAFT_CONTEXT_TABLE": "flowcraft-contexts",
    "FLOWCRAFT_STATUS_TABLE": "flowcraft-statuses",
    "FLOWCRAFT_COORDINATION_TABLE": "flowcraft-coordination",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_SERVICE_NAME": "flowcraft",
    "POWERTOOLS_METRICS_NAMESPACE": "Flowcraft",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
}

#: (label, code, reference label for the ratio column or None)
CASES: tuple[tuple[str, str, str | None], ...] = (
    ("import boto3", "import boto3", None),
    (
        "boto3 + sqs, dynamodb clients",
        "import boto3; boto3.client('sqs'); boto3.client('dynamodb')",
        None,
    ),
    ("import handlers.worker", "import handlers.worker", "import boto3"),
    ("import handlers.api", "import handlers.api", "import boto3"),
    ("import handlers.reconciler", "import handlers.reconciler", "import boto3"),
    (
        "worker: import + first-use init",
        "import handlers.worker, handlers.config as c; c.container()",
        "boto3 + sqs, dynamodb clients",
    ),
    (
        "api: import + first-use init",
        "import handlers.api, handlers.config as c; c.container(); handlers.api.openapi_json()",
        "boto3 + sqs, dynamodb clients",
    ),
)


def _environment(app: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FLOWCRAFT_"))}
    env.update(DUMMY_ENVIRONMENT)
    env["FLOWCRAFT_APP"] = app
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _once(code: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"`{code}` failed:\n{result.stderr.strip()}")
    return elapsed * 1000


def measure(code: str, env: dict[str, str], runs: int) -> float:
    _once(code, env)  # warm-up: compiles bytecode, warms the page cache
    return statistics.median(_once(code, env) for _ in range(runs))


def top_imports(code: str, env: dict[str, str], count: int = 12) -> list[tuple[float, str]]:
    """The slowest packages by cumulative import time (``-X importtime``).

    Counted at each package's top module (``boto3``, ``flowcraft_core``, ...), wherever it was
    first imported from; a package's time includes the packages it imports first.
    """
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    rows: list[tuple[float, str]] = []
    for line in result.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| *(\S+)", line)
        if match and "." not in match.group(2) and not match.group(2).startswith("_"):
            rows.append((int(match.group(1)) / 1000, match.group(2)))
    return sorted(rows, reverse=True)[:count]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh processes per case (median)")
    parser.add_argument("--app", default="workflows", help="FLOWCRAFT_APP for the init cases")
    parser.add_argument(
        "--importtime", action="store_true", help="also list the worker's slowest imports"
    )
    args = parser.parse_args(argv)
    env = _environment(args.app)

    baseline = measure("pass", env, args.runs)
    print(f"python {sys.version.split()[0]}, {args.runs} runs per case, median wall time")
    print(f"baseline `python -c pass`: {baseline:.0f} ms (subtracted below)\n")
    net: dict[str, float] = {}
    print(f"{'case':<36} {'net ms':>8} {'ratio':>8}  reference")
    for label, code, reference in CASES:
        net[label] = measure(code, env, args.runs) - baseline
        ratio = f"{net[label] / net[reference]:.2f}x" if reference else ""
        print(f"{label:<36} {net[label]:>8.0f} {ratio:>8}  {reference or ''}")
    worker_ratio = net["import handlers.worker"] / net["import boto3"]
    init_ratio = net["worker: import + first-use init"] / net["boto3 + sqs, dynamodb clients"]
    print(f"\nworker import / boto3 import: {worker_ratio:.2f}x (target <= 1.5x)")
    print(f"worker cold start (import + init) / boto3 with two clients: {init_ratio:.2f}x")

    if args.importtime:
        print("\nslowest imports of the worker's cold start (cumulative ms, -X importtime):")
        for ms, name in top_imports(CASES[5][1], env):
            print(f"  {ms:>7.1f}  {name}")


if __name__ == "__main__":
    main()
