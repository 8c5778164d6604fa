"""Shared settings of the demo."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flowcraft_core.status import FINAL

Handler = Callable[[dict[str, Any], Any], Any]


Json = dict[str, Any]


FINAL_STATUSES = FINAL


#: How often the demo reads a run's status. Each read costs the API a DynamoDB read, which is
#: why those reads are counted apart from the run's own requests.
POLL_INTERVAL_S = 0.1


OUTPUT_WIDTH = 72


#: Where the handlers' stdout goes (their Powertools logs and EMF metrics), under ``--out``.
LAMBDA_LOG = "lambda.log"


LOGGERS_TO_QUIET = ("flowcraft", "botocore", "urllib3", "werkzeug", "aws_lambda_powertools")
