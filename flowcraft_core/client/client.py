"""``FlowcraftClient``: the HTTP API from Python, signed the way the deployed API wants.

The transport is the standard library's ``urllib`` (nothing to install beyond boto3/botocore,
which signing needs anyway). Every method maps to one route of the README's HTTP API and returns
a pydantic model of the answer; an error status raises the matching
:class:`~flowcraft_core.client.errors.ApiError` with the API's message.

Where the API lives: :meth:`FlowcraftClient.from_stack` reads a deployed stack's ``ApiUrl``
output (and, for an API-key stack, the key itself); :func:`resolve_api_url` implements the
command line's ``--api`` / ``FLOWCRAFT_API_URL`` / ``--stack`` order.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import quote, urlencode

from ..environment import FLOWCRAFT_API_URL, FLOWCRAFT_STACK
from ..status import AWAITING
from .auth import Auth, AuthMode, choose_auth, is_local
from .errors import ConfigurationError, TransportError, error_for
from .models import NodePage, Run, RunAccepted, RunPage, RunSummary

#: Where ``make up`` serves the API; the default target when nothing else is configured.
LOCAL_API_URL = "http://127.0.0.1:3000"
#: The stack output that holds the API's base URL (``stacks/flowcraft_stack.py``).
API_URL_OUTPUT = "ApiUrl"
#: The stack output that names the API key of an ``apiAuth=api_key`` stack.
API_KEY_ID_OUTPUT = "ApiKeyId"
USER_AGENT = "flowcraft-client/0.1"


class FlowcraftClient:
    """Start, list, inspect, resume, cancel and redrive runs through the HTTP API."""

    def __init__(
        self,
        api_url: str,
        *,
        auth: Auth | AuthMode = "auto",
        api_key: str | None = None,
        region: str | None = None,
        session: Any = None,
        timeout_s: float = 30.0,
    ) -> None:
        """``auth="auto"``: ``x-api-key`` when ``api_key`` is given, unsigned for a loopback URL
        (the local server), SigV4 with the standard credential chain otherwise."""
        if not api_url.startswith(("http://", "https://")):
            raise ConfigurationError(f"API URL must start with http:// or https://: {api_url!r}")
        self.api_url = api_url.rstrip("/")
        self.auth: Auth = (
            choose_auth(api_url, auth, api_key=api_key, region=region, session=session)
            if isinstance(auth, str)
            else auth
        )
        self.timeout_s = timeout_s
        # The local server is on loopback: never send its requests through a proxy.
        handlers = [urllib.request.ProxyHandler({})] if is_local(api_url) else []
        self._opener = urllib.request.build_opener(*handlers)

    @classmethod
    def from_stack(
        cls,
        stack_name: str,
        *,
        auth: Auth | AuthMode = "auto",
        api_key: str | None = None,
        region: str | None = None,
        session: Any = None,
        timeout_s: float = 30.0,
    ) -> FlowcraftClient:
        """The API of a deployed stack, from its CloudFormation outputs."""
        url, key = stack_api(stack_name, region=region, session=session, fetch_key=api_key is None)
        return cls(
            url,
            auth=auth,
            api_key=api_key or key,
            region=region,
            session=session,
            timeout_s=timeout_s,
        )

    # ---------------------------------------------------------------------------- routes

    def start(
        self,
        blueprint_id: str,
        context: Mapping[str, Any] | None = None,
        *,
        run_id: str | None = None,
    ) -> RunAccepted:
        """``POST /runs``; the same ``run_id`` again returns the same run."""
        body: dict[str, Any] = {"blueprintId": blueprint_id, "context": dict(context or {})}
        if run_id is not None:
            body["runId"] = run_id
        return RunAccepted.model_validate(self.request("POST", "/runs", body))

    def get(self, run_id: str) -> Run:
        """``GET /runs/{runId}``."""
        return Run.model_validate(self.request("GET", f"/runs/{_segment(run_id)}"))

    def list_runs(
        self,
        *,
        status: str | None = None,
        blueprint_id: str | None = None,
        limit: int | None = None,
        next_token: str | None = None,
    ) -> RunPage:
        """``GET /runs``: one page, newest first."""
        query = {
            "status": status,
            "blueprintId": blueprint_id,
            "limit": limit,
            "nextToken": next_token,
        }
        return RunPage.model_validate(self.request("GET", "/runs", query=query))

    def iter_runs(
        self,
        *,
        status: str | None = None,
        blueprint_id: str | None = None,
        limit: int | None = None,
        page_size: int = 100,
    ) -> Iterator[RunSummary]:
        """Runs newest first across pages, at most ``limit`` of them (all without a limit)."""
        token: str | None = None
        returned = 0
        while limit is None or returned < limit:
            size = page_size if limit is None else min(page_size, limit - returned)
            page = self.list_runs(
                status=status, blueprint_id=blueprint_id, limit=size, next_token=token
            )
            for run in page.items:
                yield run
                returned += 1
            token = page.next_token
            if not token:
                return

    def resume(
        self,
        run_id: str,
        *,
        node_id: str | None = None,
        action: str | None = None,
        output: Any = None,
    ) -> RunAccepted:
        """``POST /runs/{runId}/resume``: continue an awaiting run."""
        body: dict[str, Any] = {}
        if node_id is not None:
            body["nodeId"] = node_id
        if action is not None:
            body["action"] = action
        if output is not None:
            body["output"] = output
        path = f"/runs/{_segment(run_id)}/resume"
        return RunAccepted.model_validate(self.request("POST", path, body))

    def cancel(self, run_id: str) -> RunAccepted:
        """``POST /runs/{runId}/cancel``."""
        return RunAccepted.model_validate(self.request("POST", f"/runs/{_segment(run_id)}/cancel"))

    def redrive(self, run_id: str) -> RunAccepted:
        """``POST /runs/{runId}/redrive``: a failed run continues from its failed nodes."""
        return RunAccepted.model_validate(self.request("POST", f"/runs/{_segment(run_id)}/redrive"))

    def nodes(
        self, run_id: str, *, limit: int | None = None, next_token: str | None = None
    ) -> NodePage:
        """``GET /runs/{runId}/nodes``: one page of node results."""
        query = {"limit": limit, "nextToken": next_token}
        path = f"/runs/{_segment(run_id)}/nodes"
        return NodePage.model_validate(self.request("GET", path, query=query))

    def wait(
        self,
        run_id: str,
        *,
        timeout_s: float | None = None,
        poll_s: float = 1.0,
        until_awaiting: bool = True,
        on_update: Callable[[Run], None] | None = None,
    ) -> Run:
        """Poll until the run is final (or ``awaiting``, which needs a resume); returns it.

        Raises ``TimeoutError`` after ``timeout_s``. ``on_update`` sees every poll's view.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            run = self.get(run_id)
            if on_update is not None:
                on_update(run)
            if run.is_final or (until_awaiting and run.status == AWAITING):
                return run
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"run {run_id} is still {run.status} after {timeout_s:g} s")
            time.sleep(poll_s)

    # ---------------------------------------------------------------------------- transport

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: Mapping[str, Any] | None = None,
    ) -> Any:
        """One API call: JSON in, JSON out; error statuses raise :class:`ApiError`."""
        params = {k: str(v) for k, v in (query or {}).items() if v is not None}
        url = self.api_url + path + (f"?{urlencode(params)}" if params else "")
        data = b"" if body is None else json.dumps(body).encode("utf-8")
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if body is not None:
            headers["Content-Type"] = "application/json"
        signed = self.auth.headers(method, url, headers, data)
        request = urllib.request.Request(url, data=data or None, headers=signed, method=method)
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise TransportError(
                f"cannot reach the Flowcraft API at {self.api_url}: {reason}"
            ) from None
        payload = _json_or_text(raw)
        if status >= 400:
            raise error_for(status, _message(payload, status), payload, method=method, path=path)
        return payload


def _segment(value: str) -> str:
    """A run id as one path segment (the API decodes it)."""
    return quote(value, safe="")


def _json_or_text(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", errors="replace")


def _message(payload: Any, status: int) -> str:
    """The API's ``message`` (API Gateway's own errors use ``message`` / ``Message`` too)."""
    if isinstance(payload, dict):
        for key in ("message", "Message"):
            if isinstance(payload.get(key), str):
                return str(payload[key])
    if isinstance(payload, str) and payload.strip():
        return payload.strip()[:500]
    return f"HTTP {status}"


def stack_api(
    stack_name: str, *, region: str | None = None, session: Any = None, fetch_key: bool = True
) -> tuple[str, str | None]:
    """(API URL, API key or None) from a deployed stack's CloudFormation outputs."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    session = session or boto3.Session()
    try:
        cloudformation = session.client("cloudformation", region_name=region)
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except (ClientError, BotoCoreError) as error:
        raise ConfigurationError(f"cannot read stack {stack_name!r}: {error}") from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    url = outputs.get(API_URL_OUTPUT)
    if not url:
        raise ConfigurationError(
            f"stack {stack_name!r} has no {API_URL_OUTPUT} output; is it a Flowcraft stack "
            f"(outputs: {', '.join(sorted(outputs)) or 'none'})?"
        )
    key: str | None = None
    key_id = outputs.get(API_KEY_ID_OUTPUT)
    if key_id and fetch_key:
        try:
            apigateway = session.client("apigateway", region_name=region)
            key = apigateway.get_api_key(apiKey=key_id, includeValue=True).get("value")
        except (ClientError, BotoCoreError) as error:
            raise ConfigurationError(
                f"stack {stack_name!r} uses API keys and key {key_id} cannot be read ({error}); "
                "pass --api-key or set FLOWCRAFT_API_KEY"
            ) from None
    return url, key


def resolve_api_url(
    api: str | None = None,
    stack: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[str | None, str | None]:
    """(API URL, stack name) in the command line's order: ``--api``, ``--stack``,
    ``FLOWCRAFT_API_URL``, ``FLOWCRAFT_STACK``, then the local server ``make up`` starts."""
    env = os.environ if environ is None else environ
    if api:
        return api, None
    if stack:
        return None, stack
    if env.get(FLOWCRAFT_API_URL):
        return env[FLOWCRAFT_API_URL], None
    if env.get(FLOWCRAFT_STACK):
        return None, env[FLOWCRAFT_STACK]
    return LOCAL_API_URL, None
