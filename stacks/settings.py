"""Deployment settings, parsed from CDK context (``cdk.json`` and ``-c key=value``).

Everything a user may want to change between two copies of the stack lives here, under keys
prefixed ``flowcraft:``. Values come typed from ``cdk.json`` but as strings from the command
line (``-c flowcraft:fifo=true``), so every parser accepts both. Bad values fail synthesis with
a message naming the key, the value and what is allowed: a typo must not deploy silently.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal, TypeVar

from flowcraft_core.aws.schema import DEFAULT_PREFIX, DEFAULT_RETENTION_DAYS

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


class SettingsError(ValueError):
    """A context value is missing, malformed or inconsistent with another one."""


T = TypeVar("T")


@dataclass(frozen=True)
class Settings:
    """Typed deployment settings. Field names map to context keys (see ``CONTEXT_KEYS``)."""

    prefix: str = DEFAULT_PREFIX
    stack_name: str = ""  # empty: same as the prefix
    architecture: Architecture = "arm64"
    worker_timeout_seconds: int = 60
    worker_memory_mb: int = 256
    batch_size: int = 10
    max_batching_window_seconds: int = 1
    worker_max_concurrency: int = 20
    #: Reserved concurrency of the worker; 0 means "the event source's maximum concurrency".
    worker_reserved_concurrency: int = 0
    #: Reserved concurrency of the API function: at most this many requests run at once.
    api_reserved_concurrency: int = 10
    #: false leaves every function unreserved (accounts whose concurrency quota is too low).
    reserved_concurrency: bool = True
    reconciler_schedule_minutes: int = 1
    stalled_seconds: int = 300
    api_auth: ApiAuth = "iam"
    cognito_user_pool_arn: str = ""
    api_throttle_rate: int = 50
    api_throttle_burst: int = 100
    api_cloudwatch_role: bool = True
    dashboard: bool = True
    log_retention_days: int = 30
    fifo: bool = False
    tracing: bool = False
    oldest_message_alarm_seconds: int = 300
    api_latency_alarm_ms: int = 3000
    alarm_topic_arn: str = ""
    alarm_email: str = ""
    removal_policy: RemovalPolicyName = "retain"
    deletion_protection: bool = True
    #: Days a finished run stays readable (``FLOWCRAFT_RETENTION_DAYS``); S3 payloads expire
    #: ``retention + DEFAULT_RUN_HORIZON_DAYS`` days after they were written.
    retention_days: int = DEFAULT_RETENTION_DAYS
    #: Comma-separated account ids or IAM ARNs: only they may call the API (IAM auth only).
    api_allowed_principals: tuple[str, ...] = ()
    #: An interface VPC endpoint id: the API becomes private, reachable only through it.
    api_source_vpce: str = ""
    #: Put a WAF web ACL (AWS managed rules + a per-IP rate limit) in front of the stage.
    waf: bool = False
    bundle_dependencies: bool = True

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
        unknown = sorted(
            key for key in context if key.startswith(CONTEXT_PREFIX) and key not in FIELD_BY_KEY
        )
        if unknown:
            raise SettingsError(
                f"unknown context key(s) {', '.join(unknown)}; known keys: "
                + ", ".join(sorted(FIELD_BY_KEY))
            )
        values: dict[str, Any] = {}
        for key, name in FIELD_BY_KEY.items():
            if key in context and context[key] is not None:
                values[name] = _PARSERS[name](key, context[key])
        # Lambda's FIFO event source has no batching window: default it to 0 there.
        if values.get("fifo") and "max_batching_window_seconds" not in values:
            values["max_batching_window_seconds"] = 0
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Check rules that involve more than one value (single values are checked on parse)."""
        if self.fifo and self.max_batching_window_seconds:
            raise SettingsError(
                f"{_key('max_batching_window_seconds')} must be 0 when {_key('fifo')} is true: "
                "Lambda's FIFO event source has no batching window"
            )
        if self.fifo and self.batch_size > 10:
            raise SettingsError(f"{_key('batch_size')} must be at most 10 for a FIFO queue")
        if self.batch_size > 10 and self.max_batching_window_seconds < 1:
            raise SettingsError(
                f"{_key('batch_size')} above 10 needs {_key('max_batching_window_seconds')} >= 1"
            )
        if self.stalled_seconds <= self.worker_timeout_seconds:
            raise SettingsError(
                f"{_key('stalled_seconds')} ({self.stalled_seconds}) must exceed "
                f"{_key('worker_timeout_seconds')} ({self.worker_timeout_seconds}), or the "
                "reconciler would resume runs whose node is still executing"
            )
        if 0 < self.worker_reserved_concurrency < self.worker_max_concurrency:
            raise SettingsError(
                f"{_key('worker_reserved_concurrency')} ({self.worker_reserved_concurrency}) "
                f"must be at least {_key('worker_max_concurrency')} "
                f"({self.worker_max_concurrency}), or Lambda throttles the queue's poller"
            )
        if self.removal_policy == "destroy" and self.deletion_protection:
            raise SettingsError(
                f"{_key('removal_policy')}=destroy needs {_key('deletion_protection')}=false: "
                "`cdk destroy` cannot delete a table with deletion protection"
            )
        if self.api_allowed_principals and self.api_auth != "iam":
            raise SettingsError(
                f"{_key('api_allowed_principals')} needs {_key('api_auth')}=iam: API keys and "
                "Cognito tokens carry no IAM principal to match"
            )
        if self.api_auth == "cognito" and not self.cognito_user_pool_arn:
            raise SettingsError(
                f"{_key('api_auth')}=cognito needs {_key('cognito_user_pool_arn')} "
                "(the ARN of an existing user pool)"
            )

    @property
    def resolved_stack_name(self) -> str:
        """The CloudFormation stack name: explicit, or the prefix so two copies never clash."""
        return self.stack_name or self.prefix


# --------------------------------------------------------------------------- parsing helpers


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _key(field_name: str) -> str:
    return CONTEXT_PREFIX + _camel(field_name)


def _parse_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "1", "yes"}:
        return True
    if isinstance(value, str) and value.strip().lower() in {"false", "0", "no"}:
        return False
    raise SettingsError(f"{key} must be true or false, got {value!r}")


def _int_parser(low: int, high: int) -> Callable[[str, Any], int]:
    def parse(key: str, value: Any) -> int:
        if isinstance(value, bool):
            raise SettingsError(f"{key} must be an integer, got {value!r}")
        whole_float = isinstance(value, float) and value.is_integer()
        digits = isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value) is not None
        if not (isinstance(value, int) or whole_float or digits):
            raise SettingsError(f"{key} must be an integer, got {value!r}")
        number = int(value)
        if not low <= number <= high:
            raise SettingsError(f"{key} must be between {low} and {high}, got {number}")
        return number

    return parse


def _choice_parser(*choices: str) -> Callable[[str, Any], str]:
    def parse(key: str, value: Any) -> str:
        text = str(value).strip().lower().replace("-", "_")
        if text not in choices:
            raise SettingsError(f"{key} must be one of {', '.join(choices)}, got {value!r}")
        return text

    return parse


def _pattern_parser(pattern: re.Pattern[str], what: str) -> Callable[[str, Any], str]:
    def parse(key: str, value: Any) -> str:
        text = str(value).strip()
        if text and not pattern.fullmatch(text):
            raise SettingsError(f"{key} must be {what}, got {value!r}")
        return text

    return parse


def _parse_principals(key: str, value: Any) -> tuple[str, ...]:
    """A list (cdk.json) or a comma-separated string (``-c key=a,b``) of principals."""
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    principals = tuple(str(item).strip() for item in items if str(item).strip())
    for principal in principals:
        if not _PRINCIPAL_PATTERN.fullmatch(principal):
            raise SettingsError(
                f"{key} takes 12-digit account ids or IAM role/user ARNs, got {principal!r}"
            )
    return principals


def _parse_retention(key: str, value: Any) -> int:
    days = _int_parser(0, 3653)(key, value)
    if days not in LOG_RETENTION_DAYS:
        allowed = ", ".join(str(d) for d in LOG_RETENTION_DAYS)
        raise SettingsError(f"{key} must be one of {allowed} (0 = never expire), got {days}")
    return days


def _parse_prefix(key: str, value: Any) -> str:
    text = _pattern_parser(
        _PREFIX_PATTERN,
        "1-40 lowercase letters, digits or hyphens starting with a letter",
    )(key, value)
    if not text:
        raise SettingsError(f"{key} must not be empty")
    return text


_PARSERS: dict[str, Callable[[str, Any], Any]] = {
    "prefix": _parse_prefix,
    "stack_name": _pattern_parser(
        _STACK_NAME_PATTERN, "a CloudFormation stack name (letters, digits, hyphens)"
    ),
    "architecture": _choice_parser("arm64", "x86_64"),
    "worker_timeout_seconds": _int_parser(1, 900),
    "worker_memory_mb": _int_parser(128, 10240),
    "batch_size": _int_parser(1, 10000),
    "max_batching_window_seconds": _int_parser(0, 300),
    "worker_max_concurrency": _int_parser(2, 1000),
    "worker_reserved_concurrency": _int_parser(0, 1000),
    "api_reserved_concurrency": _int_parser(1, 1000),
    "reserved_concurrency": _parse_bool,
    "reconciler_schedule_minutes": _int_parser(1, 1440),
    "stalled_seconds": _int_parser(30, 7 * 24 * 3600),
    "api_auth": _choice_parser("iam", "api_key", "cognito"),
    "cognito_user_pool_arn": _pattern_parser(_COGNITO_ARN_PATTERN, "a Cognito user pool ARN"),
    "api_throttle_rate": _int_parser(1, 10000),
    "api_throttle_burst": _int_parser(1, 5000),
    "api_cloudwatch_role": _parse_bool,
    "dashboard": _parse_bool,
    "log_retention_days": _parse_retention,
    "fifo": _parse_bool,
    "tracing": _parse_bool,
    "oldest_message_alarm_seconds": _int_parser(60, 14 * 24 * 3600),
    "api_latency_alarm_ms": _int_parser(100, 29000),
    "alarm_topic_arn": _pattern_parser(_SNS_ARN_PATTERN, "an SNS topic ARN"),
    "alarm_email": _pattern_parser(_EMAIL_PATTERN, "an e-mail address"),
    "removal_policy": _choice_parser("retain", "destroy"),
    "deletion_protection": _parse_bool,
    "retention_days": _int_parser(1, 3650),
    "api_allowed_principals": _parse_principals,
    "api_source_vpce": _pattern_parser(_VPCE_PATTERN, "a VPC endpoint id (vpce-...)"),
    "waf": _parse_bool,
    "bundle_dependencies": _parse_bool,
}

#: Context key -> Settings field, e.g. ``flowcraft:workerTimeoutSeconds`` -> worker_timeout_seconds.
FIELD_BY_KEY: dict[str, str] = {_key(f.name): f.name for f in fields(Settings)}
CONTEXT_KEYS: dict[str, str] = {name: key for key, name in FIELD_BY_KEY.items()}

assert set(_PARSERS) == {f.name for f in fields(Settings)}, "every setting needs a parser"
