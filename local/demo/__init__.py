"""``python -m local demo``: every example workflow, end to end, on the local stack.

It starts :class:`~local.stack.LocalStack` (its own moto server unless ``AWS_ENDPOINT_URL`` names
one), then drives each example in ``workflows`` through the HTTP API only, exactly as a client of
the deployed API Gateway would: ``POST /runs``, poll ``GET /runs/{runId}``, and for the approval
example ``POST /runs/{runId}/resume`` once the run is ``awaiting``. Every node really goes through
SQS, the worker handler and DynamoDB.

Runs go one after another, not all at once, so the AWS requests each one causes can be attributed
exactly; the whole demo still takes about ten seconds (the reminder sleeps two of them). Requests
are tagged by who made them (see :class:`RequestLedger`), so a run's figure is what the *workflow*
cost (worker invocations plus the API calls that start and resume it), not the demo's own status
polling or the event source's idle long polls, which are reported separately.

At the end it prints, per run: status, a timeline (node, status, attempts, milliseconds since the
run was created, output), and the AWS requests; writes a Mermaid diagram coloured by node status
to ``<out>/<blueprint>.mmd``; and exits 0 only if every run ended as its example expects.

Options (``python -m local.demo --help``): ``--out DIR`` (default ``demo-out``); ``--timeout S``
per run (a run that overruns is cancelled and reported); ``--only ID`` to run some examples;
``--prefix`` for resource names; ``--verbose`` for the stack's logs (otherwise only warnings, so
the output stays readable).
"""

from __future__ import annotations

from local.demo.cli import build_parser, main
from local.demo.examples import EXAMPLES, Example, check
from local.demo.http import Api, ApiError
from local.demo.ledger import RequestLedger, api_role
from local.demo.report import describe, diagram_statuses, write_diagram
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
    "diagram_statuses",
    "main",
    "run_example",
    "write_diagram",
]
