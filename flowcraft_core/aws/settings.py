"""Where the AWS resources are: read from ``FLOWCRAFT_*`` variables, validated once."""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, Field, ValidationError

from ..distributed.payloads import max_value_bytes_from_environ
from ..environment import (
    FLOWCRAFT_APP,
    FLOWCRAFT_PAYLOAD_BUCKET,
    FLOWCRAFT_RETENTION_DAYS,
    FLOWCRAFT_STALLED_SECONDS,
    FLOWCRAFT_WEBHOOK_BASE_URL,
    REQUIRED,
)
from ..errors import FlowcraftError
from .schema import DEFAULT_RETENTION_DAYS


class SettingsError(FlowcraftError, RuntimeError):
    pass


#: Settings field -> the required variable it comes from (``flowcraft_core.environment``).
_VARIABLES = {name.removeprefix("FLOWCRAFT_").lower(): name for name in REQUIRED}


class AwsSettings(BaseModel):
    queue_url: str = Field(min_length=1)
    context_table: str = Field(min_length=1)
    status_table: str = Field(min_length=1)
    coordination_table: str = Field(min_length=1)
    #: The S3 bucket for values too large for an item; without it such values fail clearly.
    payload_bucket: str | None = None
    #: The API's base URL, which webhook nodes' URLs start with (else they are paths alone).
    webhook_base_url: str = ""
    app_module: str = "workflows"
    stalled_seconds: float = Field(default=300, gt=0)
    #: Finished runs stay readable this many days (items and payloads expire after).
    retention_days: float = Field(default=DEFAULT_RETENTION_DAYS, gt=0)
    #: Largest value (JSON bytes) a run stores; by default 1/8 of the function's memory.
    max_value_bytes: int = Field(default_factory=max_value_bytes_from_environ, gt=0)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> AwsSettings:
        env = os.environ if environ is None else environ
        missing = [var for var in _VARIABLES.values() if not env.get(var)]
        if missing:
            raise SettingsError(
                "missing environment variable(s): "
                + ", ".join(missing)
                + " (the CDK stack sets them; locally `python -m local provision` prints them)"
            )
        data: dict[str, object] = {field: env[var] for field, var in _VARIABLES.items()}
        data["app_module"] = env.get(FLOWCRAFT_APP, "workflows")
        if env.get(FLOWCRAFT_PAYLOAD_BUCKET):
            data["payload_bucket"] = env[FLOWCRAFT_PAYLOAD_BUCKET]
        if env.get(FLOWCRAFT_WEBHOOK_BASE_URL):
            data["webhook_base_url"] = env[FLOWCRAFT_WEBHOOK_BASE_URL]
        if env.get(FLOWCRAFT_RETENTION_DAYS):
            data["retention_days"] = env[FLOWCRAFT_RETENTION_DAYS]
        data["max_value_bytes"] = max_value_bytes_from_environ(env)
        if env.get(FLOWCRAFT_STALLED_SECONDS):
            data["stalled_seconds"] = env[FLOWCRAFT_STALLED_SECONDS]
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise SettingsError(f"invalid Flowcraft settings: {exc}") from None
