"""A Lambda-like ``context`` object for handlers invoked in-process (its fidelity to Lambda's:
docs/local.md, "The Lambda context").
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

#: moto's default account; used where a real account id would appear in ARNs.
DEFAULT_ACCOUNT_ID = "123456789012"
DEFAULT_REGION = "us-east-1"


@dataclass
class LambdaContext:
    """The attributes and method the Python Lambda runtime exposes on ``context``."""

    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: str
    aws_request_id: str
    log_group_name: str
    log_stream_name: str
    deadline_epoch_ms: int
    identity: Any = None
    client_context: Any = None
    tenant_id: str | None = None

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the (emulated) timeout; never negative, as on Lambda."""
        remaining = self.deadline_epoch_ms - int(time.time() * 1000)
        return max(remaining, 0)


def make_context(
    function_name: str,
    *,
    timeout_s: float,
    region: str = DEFAULT_REGION,
    account_id: str = DEFAULT_ACCOUNT_ID,
    memory_mb: int = 1024,
    request_id: str | None = None,
) -> LambdaContext:
    """A fresh context for one invocation, its deadline ``timeout_s`` from now."""
    now = datetime.now(UTC)
    stream_id = uuid.uuid4().hex
    return LambdaContext(
        function_name=function_name,
        function_version="$LATEST",
        invoked_function_arn=f"arn:aws:lambda:{region}:{account_id}:function:{function_name}",
        memory_limit_in_mb=str(memory_mb),
        aws_request_id=request_id or str(uuid.uuid4()),
        log_group_name=f"/aws/lambda/{function_name}",
        log_stream_name=f"{now:%Y/%m/%d}/[$LATEST]{stream_id}",
        deadline_epoch_ms=int(time.time() * 1000 + timeout_s * 1000),
    )
