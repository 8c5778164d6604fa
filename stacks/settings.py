"""Deployment settings, parsed from CDK context (``cdk.json`` and ``-c key=value``).

Everything a user may want to change between two copies of the stack lives here, under keys
prefixed ``flowcraft:``. Values come typed from ``cdk.json`` but as strings from the command
line (``-c flowcraft:fifo=true``), so every parser accepts both. Bad values fail synthesis with
a message naming the key, the value and what is allowed: a typo must not deploy silently.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from flowcraft_core.aws.schema import DEFAULT_PREFIX, DEFAULT_RETENTION_DAYS
from flowcraft_core.errors import FlowcraftError

CONTEXT_PREFIX = "flowcraft:"

Architecture = Literal["arm64", "x86_64"]
ApiAuth = Literal["iam", "api_key", "cognito"]
RemovalPolicyName = Literal["retain", "destroy"]

#: Retention periods CloudWatch Logs accepts (days); 0 means "never expire".
LOG_RETENTION_DAYS: tuple[int, ...] = (
    0,
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)

#: Lowercase letters, digits and hyphens, starting with a letter: valid at once as a stack
#: name, a DynamoDB table name, an SQS queue name and a Lambda function name prefix. The length
#: cap leaves room for the longest suffix (``-reconciler``, ``-jobs-dlq.fifo``) in every limit.
_PREFIX_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
_STACK_NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}$")
_COGNITO_ARN_PATTERN = re.compile(r"^arn:aws[a-z-]*:cognito-idp:[a-z0-9-]+:\d{12}:userpool/\S+$")
_SNS_ARN_PATTERN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:\S+$")
_EMAIL_PATTERN = re.compile(r"^[^@\s,]+@[^@\s,]+\.[^@\s,]+$")
#: An IAM principal the API's resource policy may allow: an account id, or a role/user ARN
#: (``*`` wildcards allowed in the name part, as ``aws:PrincipalArn`` conditions take them).
_PRINCIPAL_PATTERN = re.compile(
    r"^(\d{12}|arn:aws[a-z-]*:(iam|sts)::\d{12}:[A-Za-z0-9+=,.@_/*-]+)$"
)
_VPCE_PATTERN = re.compile(r"^vpce-[0-9a-f]{8,17}$")


class StackSettingsError(FlowcraftError, ValueError):
    """A CDK context value is missing, malformed or inconsistent with another one."""


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _key(field_name: str) -> str:
    """The context key of a setting (``batch_size`` -> ``flowcraft:batchSize``)."""
    return CONTEXT_PREFIX + _camel(field_name)


def _flag(value: Any) -> Any:
    """cdk.json gives booleans; ``-c key=value`` gives text: only these words count."""
    if isinstance(value, str):
        word = value.strip().lower()
        if word in {"true", "1", "yes"}:
            return True
        if word in {"false", "0", "no"}:
            return False
    if isinstance(value, bool):
        return value
    raise ValueError("true or false")


def _word(value: Any) -> Any:
    """Choices match without case, ``-`` standing for ``_`` (``api-key`` is ``api_key``)."""
    return str(value).strip().lower().replace("-", "_")


def _text(value: Any) -> Any:
    return str(value).strip()


def _whole(value: Any) -> Any:
    """Integers as numbers or text; ``True`` is not 1 here."""
    if isinstance(value, bool):
        raise ValueError("an integer")
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Flag = Annotated[bool, BeforeValidator(_flag)]


Whole = Annotated[int, BeforeValidator(_whole), Field(strict=True)]
Text = Annotated[str, BeforeValidator(_text)]


def _optional(pattern: re.Pattern[str]) -> str:
    """A pattern that also accepts the empty text (an unset optional value)."""
    return f"(^$)|{pattern.pattern}"


class Settings(BaseModel):
    """Typed deployment settings, one per ``flowcraft:*`` context key (the field in camelCase):
    bounds, patterns and choices are declared on the fields, and bad values fail synthesis
    with a message naming the key, the value and what is allowed."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        populate_by_name=True,
        alias_generator=_key,
    )

    prefix: Annotated[
        str,
        BeforeValidator(_text),
        Field(
            pattern=_PREFIX_PATTERN.pattern,
            description="1-40 lowercase letters, digits or hyphens starting with a letter",
        ),
    ] = DEFAULT_PREFIX
    #: Empty: the same as the prefix.
    stack_name: Annotated[
        Text,
        Field(
            pattern=_optional(_STACK_NAME_PATTERN),
            description="a CloudFormation stack name (letters, digits, hyphens)",
        ),
    ] = ""
    architecture: Annotated[Architecture, BeforeValidator(_word)] = "arm64"
    worker_timeout_seconds: Annotated[Whole, Field(ge=1, le=900)] = 60
    worker_memory_mb: Annotated[Whole, Field(ge=128, le=10240)] = 256
    batch_size: Annotated[Whole, Field(ge=1, le=10000)] = 10
    max_batching_window_seconds: Annotated[Whole, Field(ge=0, le=300)] = 1
    worker_max_concurrency: Annotated[Whole, Field(ge=2, le=1000)] = 20
    #: Reserved concurrency of the worker; 0 means "the event source's maximum concurrency".
    worker_reserved_concurrency: Annotated[Whole, Field(ge=0, le=1000)] = 0
    #: Reserved concurrency of the API function: at most this many requests run at once.
    api_reserved_concurrency: Annotated[Whole, Field(ge=1, le=1000)] = 10
    #: false leaves every function unreserved (accounts whose concurrency quota is too low).
    reserved_concurrency: Flag = True
    reconciler_schedule_minutes: Annotated[Whole, Field(ge=1, le=1440)] = 1
    stalled_seconds: Annotated[Whole, Field(ge=30, le=7 * 24 * 3600)] = 300
    api_auth: Annotated[ApiAuth, BeforeValidator(_word)] = "iam"
    cognito_user_pool_arn: Annotated[
        Text, Field(pattern=_optional(_COGNITO_ARN_PATTERN), description="a Cognito user pool ARN")
    ] = ""
    api_throttle_rate: Annotated[Whole, Field(ge=1, le=10000)] = 50
    api_throttle_burst: Annotated[Whole, Field(ge=1, le=5000)] = 100
    api_cloudwatch_role: Flag = True
    dashboard: Flag = True
    log_retention_days: Annotated[Whole, Field(ge=0, le=3653)] = 30
    fifo: Flag = False
    tracing: Flag = False
    oldest_message_alarm_seconds: Annotated[Whole, Field(ge=60, le=14 * 24 * 3600)] = 300
    api_latency_alarm_ms: Annotated[Whole, Field(ge=100, le=29000)] = 3000
    alarm_topic_arn: Annotated[
        Text, Field(pattern=_optional(_SNS_ARN_PATTERN), description="an SNS topic ARN")
    ] = ""
    alarm_email: Annotated[
        Text, Field(pattern=_optional(_EMAIL_PATTERN), description="an e-mail address")
    ] = ""
    removal_policy: Annotated[RemovalPolicyName, BeforeValidator(_word)] = "retain"
    deletion_protection: Flag = True
    #: Days a finished run stays readable (``FLOWCRAFT_RETENTION_DAYS``); S3 payloads expire
    #: ``retention + DEFAULT_RUN_HORIZON_DAYS`` days after they were written.
    retention_days: Annotated[Whole, Field(ge=1, le=3650)] = DEFAULT_RETENTION_DAYS
    #: Account ids or IAM ARNs (a list, or comma-separated text): only they may call the API.
    api_allowed_principals: tuple[str, ...] = ()
    #: An interface VPC endpoint id: the API becomes private, reachable only through it.
    api_source_vpce: Annotated[
        Text, Field(pattern=_optional(_VPCE_PATTERN), description="a VPC endpoint id (vpce-...)")
    ] = ""
    #: Put a WAF web ACL (AWS managed rules + a per-IP rate limit) in front of the stage.
    waf: Flag = False
    bundle_dependencies: Flag = True

    @field_validator("log_retention_days")
    @classmethod
    def _cloudwatch_period(cls, days: int) -> int:
        if days not in LOG_RETENTION_DAYS:
            allowed = ", ".join(str(d) for d in LOG_RETENTION_DAYS)
            raise ValueError(f"one of {allowed} (0 = never expire)")
        return days

    @field_validator("api_allowed_principals", mode="before")
    @classmethod
    def _principals(cls, value: Any) -> tuple[str, ...]:
        items = value if isinstance(value, list | tuple) else str(value).split(",")
        principals = tuple(str(item).strip() for item in items if str(item).strip())
        for principal in principals:
            if not _PRINCIPAL_PATTERN.fullmatch(principal):
                raise ValueError(f"12-digit account ids or IAM role/user ARNs ({principal!r})")
        return principals

    @property
    def resolved_worker_reserved_concurrency(self) -> int:
        """What the worker reserves: never less than the event source may start at once."""
        return self.worker_reserved_concurrency or self.worker_max_concurrency

    @property
    def pip_platform(self) -> str:
        """The manylinux platform tag pip downloads wheels for (the Lambda architecture)."""
        return "manylinux2014_aarch64" if self.architecture == "arm64" else "manylinux2014_x86_64"

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> Settings:
        """Parse every ``flowcraft:*`` key of a CDK context mapping; reject unknown ones."""
        known = {_key(name) for name in cls.model_fields}
        unknown = sorted(k for k in context if k.startswith(CONTEXT_PREFIX) and k not in known)
        if unknown:
            raise StackSettingsError(
                f"unknown context key(s) {', '.join(unknown)}; known keys: "
                + ", ".join(sorted(known))
            )
        values = {k: v for k, v in context.items() if k in known and v is not None}
        # Lambda's FIFO event source has no batching window: default it to 0 there.
        fifo = values.get(_key("fifo"))
        if (
            fifo is not None
            and _flag_or_none(fifo)
            and _key("max_batching_window_seconds") not in values
        ):
            values[_key("max_batching_window_seconds")] = 0
        try:
            settings = cls.model_validate(values)
        except ValidationError as exc:
            raise StackSettingsError(_explain(cls, exc)) from None
        settings.validate_together()
        return settings

    def validate_together(self) -> None:
        """Check rules that involve more than one value (single values are checked on parse)."""
        if self.fifo and self.max_batching_window_seconds:
            raise StackSettingsError(
                f"{_key('max_batching_window_seconds')} must be 0 when {_key('fifo')} is true: "
                "Lambda's FIFO event source has no batching window"
            )
        if self.fifo and self.batch_size > 10:
            raise StackSettingsError(f"{_key('batch_size')} must be at most 10 for a FIFO queue")
        if self.batch_size > 10 and self.max_batching_window_seconds < 1:
            raise StackSettingsError(
                f"{_key('batch_size')} above 10 needs {_key('max_batching_window_seconds')} >= 1"
            )
        if self.stalled_seconds <= self.worker_timeout_seconds:
            raise StackSettingsError(
                f"{_key('stalled_seconds')} ({self.stalled_seconds}) must exceed "
                f"{_key('worker_timeout_seconds')} ({self.worker_timeout_seconds}), or the "
                "reconciler would resume runs whose node is still executing"
            )
        if 0 < self.worker_reserved_concurrency < self.worker_max_concurrency:
            raise StackSettingsError(
                f"{_key('worker_reserved_concurrency')} ({self.worker_reserved_concurrency}) "
                f"must be at least {_key('worker_max_concurrency')} "
                f"({self.worker_max_concurrency}), or Lambda throttles the queue's poller"
            )
        if self.removal_policy == "destroy" and self.deletion_protection:
            raise StackSettingsError(
                f"{_key('removal_policy')}=destroy needs {_key('deletion_protection')}=false: "
                "`cdk destroy` cannot delete a table with deletion protection"
            )
        if self.api_allowed_principals and self.api_auth != "iam":
            raise StackSettingsError(
                f"{_key('api_allowed_principals')} needs {_key('api_auth')}=iam: API keys and "
                "Cognito tokens carry no IAM principal to match"
            )
        if self.api_auth == "cognito" and not self.cognito_user_pool_arn:
            raise StackSettingsError(
                f"{_key('api_auth')}=cognito needs {_key('cognito_user_pool_arn')} "
                "(the ARN of an existing user pool)"
            )

    @property
    def resolved_stack_name(self) -> str:
        """The CloudFormation stack name: explicit, or the prefix so two copies never clash."""
        return self.stack_name or self.prefix


def _flag_or_none(value: Any) -> bool | None:
    try:
        return bool(_flag(value))
    except ValueError:
        return None


def _explain(model: type[Settings], exc: ValidationError) -> str:
    """The first problem, in words that name the key, the value and what is allowed."""
    error = exc.errors()[0]
    field = str(error["loc"][0]) if error["loc"] else ""
    name = next((n for n in model.model_fields if _key(n) == field or n == field), field)
    key = _key(name) if name in model.model_fields else field
    value = error.get("input")
    kind = error["type"]
    info = model.model_fields.get(name)
    if kind in ("greater_than_equal", "less_than_equal") and info is not None:
        bounds = {type(m).__name__: m for m in info.metadata}
        low = getattr(bounds.get("Ge"), "ge", None)
        high = getattr(bounds.get("Le"), "le", None)
        return f"{key} must be between {low} and {high}, got {value}"
    if kind in ("int_parsing", "int_type", "int_from_float") or (
        kind == "value_error" and "an integer" in str(error.get("msg"))
    ):
        return f"{key} must be an integer, got {value!r}"
    if kind == "string_pattern_mismatch" and info is not None:
        return f"{key} must be {info.description}, got {value!r}"
    if kind == "literal_error" and info is not None:
        choices = ", ".join(str(c) for c in get_args(info.annotation))
        return f"{key} must be one of {choices}, got {value!r}"
    message = str(error.get("msg", "")).removeprefix("Value error, ")
    if kind == "value_error":
        return f"{key} must be {message}, got {value!r}"
    return f"{key}: {message}, got {value!r}"


#: Context key -> Settings field, e.g. ``flowcraft:workerTimeoutSeconds`` -> worker_timeout_seconds.
FIELD_BY_KEY: dict[str, str] = {_key(name): name for name in Settings.model_fields}
CONTEXT_KEYS: dict[str, str] = {name: key for key, name in FIELD_BY_KEY.items()}
