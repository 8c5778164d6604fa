"""The HTTP API's request bodies and their limits, defined once: the API function validates
with them, and the stack's gateway model is generated from them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

#: Largest request body accepted (bytes, after base64 decoding). Jobs and run records live in
#: SQS (256 KiB) and DynamoDB (400 KB) items, so a bigger starting context could never run.
MAX_BODY_BYTES = 256 * 1024
#: Run ids a client may choose ("." and ".." would not survive URL normalisation).
RUN_ID_PATTERN = r"^[A-Za-z0-9._:-]+$"
MAX_ID_LENGTH = 200


class _Request(BaseModel):
    """camelCase on the wire; an unknown field is an error (a typo must not lose data)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class StartRunRequest(_Request):
    blueprint_id: str = Field(
        min_length=1, max_length=MAX_ID_LENGTH, description="Id of a blueprint of the app."
    )
    context: dict[str, Any] = Field(
        default_factory=dict, description="The run's initial context (a JSON object)."
    )

    @field_validator("run_id")
    @classmethod
    def _addressable_run_id(cls, value: str | None) -> str | None:
        if value in (".", ".."):
            raise ValueError("runId cannot be '.' or '..' (URLs would not reach it)")
        return value

    @field_validator("context")
    @classmethod
    def _storable_context(cls, value: dict[str, Any]) -> dict[str, Any]:
        from flowcraft_core.distributed.storable import check_storable

        check_storable(value, "context")
        return value

    run_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_ID_LENGTH,
        pattern=RUN_ID_PATTERN,
        description="Idempotency key: starting the same runId again returns the same run.",
    )


class ResumeRunRequest(_Request):
    node_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_ID_LENGTH,
        description="The waiting node; optional when exactly one node waits.",
    )
    action: str | None = Field(
        default=None, min_length=1, max_length=MAX_ID_LENGTH, description="Routes the edges."
    )
    output: Any = Field(default=None, description="The waiting node's output.")

    @field_validator("output")
    @classmethod
    def _storable_output(cls, value: Any) -> Any:
        from flowcraft_core.distributed.storable import check_storable

        check_storable(value, "output")
        return value


__all__ = [
    "MAX_BODY_BYTES",
    "MAX_ID_LENGTH",
    "RUN_ID_PATTERN",
    "ResumeRunRequest",
    "StartRunRequest",
]
