"""Where the AWS resources are: read from ``FLOWCRAFT_*`` variables, validated once."""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, Field, ValidationError


class SettingsError(RuntimeError):
    pass


_VARIABLES = {
    "queue_url": "FLOWCRAFT_QUEUE_URL",
    "context_table": "FLOWCRAFT_CONTEXT_TABLE",
    "status_table": "FLOWCRAFT_STATUS_TABLE",
    "coordination_table": "FLOWCRAFT_COORDINATION_TABLE",
}


class AwsSettings(BaseModel):
    queue_url: str = Field(min_length=1)
    context_table: str = Field(min_length=1)
    status_table: str = Field(min_length=1)
    coordination_table: str = Field(min_length=1)
    app_module: str = "workflows"
    stalled_seconds: float = Field(default=300, gt=0)

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
        data["app_module"] = env.get("FLOWCRAFT_APP", "workflows")
        if env.get("FLOWCRAFT_STALLED_SECONDS"):
            data["stalled_seconds"] = env["FLOWCRAFT_STALLED_SECONDS"]
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise SettingsError(f"invalid Flowcraft settings: {exc}") from None
