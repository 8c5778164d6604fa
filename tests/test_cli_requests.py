"""What the client puts on the wire: routes the engine serves elsewhere, auth headers, signing.

A small recording HTTP server stands in for the API. ``redrive`` and ``GET /runs/{runId}/nodes``
are checked here by the request they send (the README's HTTP API), independently of the server
side. SigV4 is checked against botocore's own signer: the request as the server *received* it
(method, path, query, signed headers, body) must carry exactly the Authorization header that
``botocore.auth.SigV4Auth`` computes for it at the same instant.
"""

from __future__ import annotations

import datetime
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from botocore.auth import SigV4Auth as BotocoreSigV4
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from click.testing import CliRunner

from flowcraft_core.cli.main import cli
from flowcraft_core.client import (
    ApiKeyAuth,
    BadRequest,
    ConfigurationError,
    FlowcraftClient,
    NoAuth,
    SigV4Auth,
    choose_auth,
    resolve_api_url,
    stack_api,
)
from flowcraft_core.client.auth import region_of


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Recorder:
    url: str
    requests: list[Seen] = field(default_factory=list)
    answer: tuple[int, Any] = (202, {"runId": "r-1", "status": "running"})


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    state = Recorder(url="")

    class Handler(BaseHTTPRequestHandler):
        def _record(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            state.requests.append(Seen(self.command, self.path, dict(self.headers.items()), body))
            status, payload = state.answer
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _record

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


def run_cli(url: str, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--api", url, *args], catch_exceptions=False)


def test_redrive_posts_to_the_runs_redrive_route(recorder: Recorder) -> None:
    result = run_cli(recorder.url, "redrive", "run/with slash")
    assert result.exit_code == 0, result.output
    (seen,) = recorder.requests
    assert (seen.method, seen.path) == ("POST", "/runs/run%2Fwith%20slash/redrive")
    assert seen.body == b""
    assert "redriving run run/with slash (running)" in result.output


def test_redrive_refused_shows_the_api_message(recorder: Recorder) -> None:
    recorder.answer = (409, {"message": "run 'r-1' is completed; redrive needs a failed run"})
    result = run_cli(recorder.url, "redrive", "r-1")
    assert result.exit_code == 1
    assert "409: run 'r-1' is completed; redrive needs a failed run" in result.output


def test_nodes_pages_through_the_nodes_route(recorder: Recorder) -> None:
    recorder.answer = (200, {"items": [{"node": "a", "status": "completed"}], "nextToken": "t2"})
    result = run_cli(recorder.url, "nodes", "r-1", "--limit", "5", "--next-token", "t1")
    assert result.exit_code == 0, result.output
    (seen,) = recorder.requests
    assert (seen.method, seen.path) == ("GET", "/runs/r-1/nodes?limit=5&nextToken=t1")
    assert json.loads(result.output) == {
        "items": [{"node": "a", "status": "completed"}],
        "nextToken": "t2",
    }
    page = FlowcraftClient(recorder.url).nodes("r-1")
    assert page.next_token == "t2" and page.items[0]["node"] == "a"
    assert recorder.requests[-1].path == "/runs/r-1/nodes"


def test_start_sends_the_documented_body(recorder: Recorder) -> None:
    result = run_cli(
        recorder.url, "start", "order", "--context", '{"orderId": "A-1"}', "--run-id", "o-1"
    )
    assert result.exit_code == 0, result.output
    (seen,) = recorder.requests
    assert (seen.method, seen.path) == ("POST", "/runs")
    assert json.loads(seen.body) == {
        "blueprintId": "order",
        "context": {"orderId": "A-1"},
        "runId": "o-1",
    }
    assert seen.headers["Content-Type"] == "application/json"
    assert "Authorization" not in seen.headers and "x-api-key" not in seen.headers


def test_resume_sends_only_what_was_given(recorder: Recorder) -> None:
    recorder.answer = (202, {"runId": "r-1", "status": "running", "nodeId": "ask"})
    result = run_cli(recorder.url, "resume", "r-1", "--action", "approve", "--output", "[1, 2]")
    assert result.exit_code == 0, result.output
    assert json.loads(recorder.requests[0].body) == {"action": "approve", "output": [1, 2]}


def test_api_key_mode_sends_x_api_key(recorder: Recorder) -> None:
    result = CliRunner(env={"FLOWCRAFT_API_KEY": "k-123"}).invoke(
        cli, ["--api", recorder.url, "cancel", "r-1"]
    )
    assert result.exit_code == 0, result.output
    headers = {k.lower(): v for k, v in recorder.requests[0].headers.items()}
    assert headers["x-api-key"] == "k-123"  # header names are case-insensitive
    assert "authorization" not in headers


def test_error_bodies_become_typed_errors(recorder: Recorder) -> None:
    recorder.answer = (400, {"message": "unknown blueprint 'x'", "knownBlueprints": ["order"]})
    with pytest.raises(BadRequest) as error:
        FlowcraftClient(recorder.url).start("x")
    assert error.value.message == "unknown blueprint 'x'"
    assert error.value.body["knownBlueprints"] == ["order"]
    assert str(error.value) == "POST /runs -> 400: unknown blueprint 'x'"


# ------------------------------------------------------------------------------- signing

CREDENTIALS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "token-1")


def test_sigv4_matches_botocores_signer_for_the_request_as_received(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    frozen = datetime.datetime(2026, 12, 4, 12, 0, 0)
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: frozen)
    client = FlowcraftClient(recorder.url, auth=SigV4Auth("eu-west-1", CREDENTIALS))
    client.start("order", {"note": "ünïcode & spaces"}, run_id="o-1")
    client.list_runs(status="completed", limit=5, next_token="abc+/=")
    for seen in recorder.requests:
        authorization = seen.headers["Authorization"]
        signed = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
        assert "host" in signed and "x-amz-date" in signed
        assert seen.headers["X-Amz-Date"] == "20261204T120000Z"
        assert seen.headers["X-Amz-Security-Token"] == "token-1"
        lowered = {k.lower(): v for k, v in seen.headers.items()}
        reference = AWSRequest(
            method=seen.method,
            url=recorder.url + seen.path,
            data=seen.body,
            headers={name: lowered[name] for name in signed if name != "x-amz-date"},
        )
        BotocoreSigV4(CREDENTIALS, "execute-api", "eu-west-1").add_auth(reference)
        assert authorization == reference.headers["Authorization"]
        assert "/eu-west-1/execute-api/aws4_request" in authorization


def test_auth_is_chosen_from_the_url_and_the_key() -> None:
    assert isinstance(choose_auth("http://127.0.0.1:3000"), NoAuth)
    assert isinstance(choose_auth("http://localhost:3000/"), NoAuth)
    assert choose_auth("https://x.execute-api.eu-west-1.amazonaws.com/prod", api_key="k") == (
        ApiKeyAuth("k")
    )

    class Session:
        region_name = None

        def get_credentials(self) -> Credentials:
            return CREDENTIALS

    signer = choose_auth("https://abc.execute-api.eu-west-1.amazonaws.com/prod", session=Session())
    assert isinstance(signer, SigV4Auth) and signer.region == "eu-west-1"
    with pytest.raises(ConfigurationError, match="which AWS region"):
        choose_auth("https://api.example.com", session=Session())
    with pytest.raises(ConfigurationError, match="needs a key"):
        choose_auth("https://api.example.com", "api-key")
    assert region_of("https://abc.execute-api.us-east-2.amazonaws.com/prod/") == "us-east-2"


# ------------------------------------------------------------------------------- targets


def test_target_order_is_flag_then_stack_then_environment_then_local() -> None:
    env = {"FLOWCRAFT_API_URL": "https://env.example", "FLOWCRAFT_STACK": "envstack"}
    assert resolve_api_url("https://flag.example", "s", env) == ("https://flag.example", None)
    assert resolve_api_url(None, "s", env) == (None, "s")
    assert resolve_api_url(None, None, env) == ("https://env.example", None)
    assert resolve_api_url(None, None, {"FLOWCRAFT_STACK": "x"}) == (None, "x")
    assert resolve_api_url(None, None, {}) == ("http://127.0.0.1:3000", None)


class FakeAws:
    """The two calls ``--stack`` makes, answered like CloudFormation and API Gateway do."""

    region_name = "eu-west-1"

    def __init__(self, outputs: dict[str, str]) -> None:
        self.outputs = outputs

    def client(self, service: str, region_name: str | None = None) -> Any:
        outputs = self.outputs

        class Client:
            def describe_stacks(self, StackName: str) -> dict[str, Any]:
                rows = [{"OutputKey": k, "OutputValue": v} for k, v in outputs.items()]
                return {"Stacks": [{"StackName": StackName, "Outputs": rows}]}

            def get_api_key(self, apiKey: str, includeValue: bool) -> dict[str, Any]:
                return {"id": apiKey, "value": f"value-of-{apiKey}"}

        return Client()

    def get_credentials(self) -> Credentials:
        return CREDENTIALS


def test_stack_outputs_give_the_url_and_the_api_key() -> None:
    url = "https://abc.execute-api.eu-west-1.amazonaws.com/prod/"
    assert stack_api("flowcraft", session=FakeAws({"ApiUrl": url})) == (url, None)
    keyed = FakeAws({"ApiUrl": url, "ApiKeyId": "k1"})
    assert stack_api("flowcraft", session=keyed) == (url, "value-of-k1")
    client = FlowcraftClient.from_stack("flowcraft", session=keyed)
    assert client.api_url == url.rstrip("/") and client.auth == ApiKeyAuth("value-of-k1")
    signed = FlowcraftClient.from_stack("flowcraft", session=FakeAws({"ApiUrl": url}))
    assert isinstance(signed.auth, SigV4Auth)
    with pytest.raises(ConfigurationError, match="has no ApiUrl output"):
        stack_api("other", session=FakeAws({"QueueUrl": "q"}))


def test_watch_gives_up_after_its_timeout_with_exit_4(recorder: Recorder) -> None:
    recorder.answer = (
        200,
        {"runId": "r-1", "blueprintId": "order", "status": "running", "context": {}, "nodes": {}},
    )
    result = run_cli(recorder.url, "watch", "r-1", "--poll", "0.05", "--timeout", "0.2")
    assert result.exit_code == 4
    assert "still running after 0.2 s" in result.output


def test_live_progress_on_a_terminal_shows_done_total_running_and_elapsed() -> None:
    import io

    from rich.console import Console

    from flowcraft_core.cli.render import Watcher, progress_line
    from flowcraft_core.client import Run

    run = Run.model_validate(
        {
            "runId": "r-1",
            "blueprintId": "order",
            "status": "running",
            "nodes": {"a": "completed", "b": "skipped", "c": "running", "d": "retrying"},
            "createdAt": "2026-12-04T12:00:00Z",
        }
    )
    line = progress_line(run, 6, 12.34).plain
    assert line == "order  running  2/6 nodes done  retrying: d  running: c  12.3 s"
    screen = io.StringIO()
    with Watcher(Console(file=screen, force_terminal=True, width=100), 6) as watcher:
        watcher.update(run)
    assert "2/6 nodes done" in screen.getvalue()
