"""``python -m local demo``: every example workflow, end to end, on the local stack.

Each run goes through the HTTP API only, as a client of the deployed API would, one after
another so the AWS requests each causes are counted exactly; it prints a report per run and
writes Mermaid diagrams. Options: ``python -m local demo --help``.
Why it is shaped this way: docs/local.md, 'The demo'.
"""

from __future__ import annotations

from local.demo.cli import build_parser, main
from local.demo.examples import EXAMPLES, Example, check
from local.demo.http import Api, ApiError
from local.demo.ledger import RequestLedger, api_role
from local.demo.report import describe, run_diagram_statuses, write_diagram
from local.demo.running import RunReport, run_example

__all__ = [
    "EXAMPLES",
    "Api",
    "ApiError",
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
]
