"""How requests to the API authenticate: SigV4 (IAM), an API key, or nothing (local server).

The deployed API authorizes with IAM by default, so every request must carry a Signature V4 for
the ``execute-api`` service. Signing is botocore's own ``SigV4Auth`` with credentials from the
standard chain (environment, profile, SSO, instance role, ...), so whatever works for the AWS
CLI works here. The signature covers the exact URL, headers and body that go on the wire:
:meth:`Auth.headers` is called on the final request, after everything else was decided.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from .errors import ConfigurationError

AuthMode = Literal["auto", "iam", "api-key", "none"]

_EXECUTE_API_HOST = re.compile(r"\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


class Auth(Protocol):
    """Adds authentication headers to one request."""

    def headers(
        self, method: str, url: str, headers: dict[str, str], body: bytes
    ) -> dict[str, str]:
        """The headers to send (the given ones plus whatever authenticates the request)."""
        ...


class NoAuth:
    """Plain requests: the local API server (``make up``) has no authorizer."""

    def headers(
        self, method: str, url: str, headers: dict[str, str], body: bytes
    ) -> dict[str, str]:
        return dict(headers)


@dataclass(frozen=True)
class ApiKeyAuth:
    """``x-api-key``: stacks deployed with ``-c flowcraft:apiAuth=api_key``."""

    api_key: str

    def headers(
        self, method: str, url: str, headers: dict[str, str], body: bytes
    ) -> dict[str, str]:
        return {**headers, "x-api-key": self.api_key}


class SigV4Auth:
    """Signature V4 for ``execute-api`` with the standard AWS credential chain."""

    service = "execute-api"

    def __init__(self, region: str, credentials: Any) -> None:
        self.region = region
        self.credentials = credentials

    @classmethod
    def from_session(cls, url: str, *, region: str | None = None, session: Any = None) -> SigV4Auth:
        """Credentials from ``session`` (default: a new ``boto3.Session()``); the region from
        ``region``, else the API's host name (``<id>.execute-api.<region>.amazonaws.com``), else
        the session's configured region."""
        import boto3

        session = session or boto3.Session()
        region = region or region_of(url) or session.region_name
        if not region:
            raise ConfigurationError(
                f"cannot tell which AWS region {url} is in: pass --region or set AWS_REGION"
            )
        credentials = session.get_credentials()
        if credentials is None:
            raise ConfigurationError(
                "the API uses IAM auth but no AWS credentials were found (environment, "
                "~/.aws/credentials, SSO or an instance role); configure them as for the AWS CLI"
            )
        return cls(region, credentials)

    def headers(
        self, method: str, url: str, headers: dict[str, str], body: bytes
    ) -> dict[str, str]:
        from botocore.auth import SigV4Auth as BotocoreSigV4
        from botocore.awsrequest import AWSRequest

        request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
        BotocoreSigV4(self.credentials, self.service, self.region).add_auth(request)
        return {name: str(value) for name, value in request.headers.items()}


def region_of(url: str) -> str | None:
    """``eu-west-1`` for ``https://abc.execute-api.eu-west-1.amazonaws.com/prod``."""
    match = _EXECUTE_API_HOST.search(urlsplit(url).hostname or "")
    return match.group(1) if match else None


def is_local(url: str) -> bool:
    return (urlsplit(url).hostname or "") in LOOPBACK_HOSTS


def choose_auth(
    url: str,
    mode: AuthMode = "auto",
    *,
    api_key: str | None = None,
    region: str | None = None,
    session: Any = None,
) -> Auth:
    """``auto``: an API key if one is given, nothing for a loopback URL, SigV4 otherwise."""
    if mode == "auto":
        mode = "api-key" if api_key else ("none" if is_local(url) else "iam")
    if mode == "none":
        return NoAuth()
    if mode == "api-key":
        if not api_key:
            raise ConfigurationError(
                "API-key auth needs a key: pass --api-key or set FLOWCRAFT_API_KEY"
            )
        return ApiKeyAuth(api_key)
    return SigV4Auth.from_session(url, region=region, session=session)
