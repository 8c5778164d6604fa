"""``flowcraft``: start, follow and steer runs through the HTTP API; scaffold new workflows.

Built on click (commands, options, help) and rich (tables, live progress). Every command that
talks to the API goes through :class:`~flowcraft_core.client.FlowcraftClient`, so the command
line and Python code see the same behaviour and the same error messages.

Exit codes: 0 success (for ``watch`` and ``start --wait``: the run completed); 1 the run failed
or was cancelled, or the API refused the request; 2 bad usage; 3 the run is awaiting a resume;
4 ``--timeout`` passed before the run ended.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, ParamSpec, TypeVar

import click
from rich.console import Console

from ..client import FlowcraftClient, FlowcraftError, resolve_api_url
from ..client.models import Run
from ..environment import FLOWCRAFT_API_KEY, FLOWCRAFT_AUTH
from ..status import AWAITING, COMPLETED, RUN_STATUSES
from . import render

P = ParamSpec("P")
R = TypeVar("R")

EXIT_FAILED = 1
EXIT_AWAITING = 3
EXIT_TIMEOUT = 4


class _Consoles:
    """Consoles bound to the current stdout/stderr (tests and pipes swap them).

    Off a terminal the width is generous: a run id or a timestamp cut to fit 80 columns is
    useless in a log or to ``grep``.
    """

    @property
    def out(self) -> Console:
        return Console(highlight=False, width=None if sys.stdout.isatty() else 160)

    @property
    def err(self) -> Console:
        return Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 160)


_consoles = _Consoles()


@dataclass
class Target:
    """The global options; the client is built on first use (``new`` needs none)."""

    api: str | None
    stack: str | None
    api_key: str | None
    auth: str
    region: str | None
    request_timeout: float
    _client: FlowcraftClient | None = field(default=None, init=False)

    def client(self) -> FlowcraftClient:
        if self._client is None:
            url, stack = resolve_api_url(self.api, self.stack)
            options: dict[str, Any] = {
                "auth": self.auth,
                "api_key": self.api_key,
                "region": self.region,
                "timeout_s": self.request_timeout,
            }
            try:
                if stack is not None:
                    self._client = FlowcraftClient.from_stack(stack, **options)
                else:
                    assert url is not None
                    self._client = FlowcraftClient(url, **options)
            except FlowcraftError as error:
                fail(str(error))
        return self._client


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    _consoles.err.print(f"[red]error:[/red] {message}", markup=True, soft_wrap=True)
    sys.exit(code)


def _json_argument(value: str | None, what: str) -> Any:
    """``--context '{"a": 1}'``, ``--context @file.json`` or ``--context @-`` (stdin)."""
    if value is None:
        return None
    text = value
    if value.startswith("@"):
        source = value[1:]
        try:
            text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
        except OSError as error:
            raise click.BadParameter(f"cannot read {source}: {error.strerror}") from None
    try:
        return json.loads(text)
    except ValueError as error:
        raise click.BadParameter(f"{what} is not valid JSON: {error}") from None


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def _exit_code(run: Run) -> int:
    if run.status == COMPLETED:
        return 0
    if run.status == AWAITING:
        return EXIT_AWAITING
    return EXIT_FAILED


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--api",
    metavar="URL",
    help="API base URL. Without it: --stack, FLOWCRAFT_API_URL, FLOWCRAFT_STACK, or "
    "http://127.0.0.1:3000 (where `make up` serves it).",
)
@click.option(
    "--stack",
    metavar="NAME",
    help="Read the API URL from this CloudFormation stack's ApiUrl output (env FLOWCRAFT_STACK).",
)
@click.option(
    "--api-key",
    envvar=FLOWCRAFT_API_KEY,
    metavar="KEY",
    help="Send x-api-key (stacks deployed with apiAuth=api_key); env FLOWCRAFT_API_KEY.",
)
@click.option(
    "--auth",
    type=click.Choice(["auto", "iam", "api-key", "none"]),
    default="auto",
    envvar=FLOWCRAFT_AUTH,
    show_default=True,
    help="auto: API key if given, unsigned for 127.0.0.1, else SigV4 (IAM).",
)
@click.option("--region", metavar="REGION", help="AWS region for SigV4 and --stack.")
@click.option(
    "--request-timeout",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds per HTTP request.",
)
@click.version_option(package_name="flowcraft-aws", prog_name="flowcraft")
@click.pass_context
def cli(ctx: click.Context, **options: Any) -> None:
    """Start, follow and steer Flowcraft runs, locally or on AWS."""
    ctx.obj = Target(**options)


pass_target = click.make_pass_decorator(Target)


def _watch(client: FlowcraftClient, run_id: str, poll: float, timeout: float | None) -> int:
    """Follow a run until it is final or awaiting; show it; return the exit code."""
    first = client.get(run_id)
    total = _blueprint_size(first.blueprint_id)
    try:
        with render.Watcher(_consoles.out, total) as watcher:
            run = client.wait(run_id, timeout_s=timeout, poll_s=poll, on_update=watcher.update)
    except TimeoutError as error:
        _consoles.err.print(f"[yellow]{error}[/yellow]", markup=True)
        return EXIT_TIMEOUT
    _consoles.out.print(render.run_view(run))
    if run.status == AWAITING:
        _consoles.out.print(f"awaiting a resume: flowcraft resume {run_id} --action ...")
    return _exit_code(run)


def _blueprint_size(blueprint_id: str) -> int | None:
    """Node count of the blueprint, when the app module is at hand (for ``3/7 done``)."""
    from .app_lookup import find_blueprint

    blueprint = find_blueprint(blueprint_id)
    return len(blueprint.nodes) if blueprint is not None else None


def _api_errors(function: Callable[P, R]) -> Callable[P, R]:
    """Turn client errors into one red line and exit code 1 (no traceback)."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        except FlowcraftError as error:
            fail(str(error))

    return wrapper


@cli.command()
@click.argument("blueprint")
@click.option(
    "--context",
    "context_arg",
    metavar="JSON|@FILE",
    help="Initial context: a JSON object, @file.json, or @- for stdin.",
)
@click.option("--run-id", metavar="ID", help="Idempotency key: the same id returns the same run.")
@click.option("--wait", is_flag=True, help="Follow the run until it ends (exit 0 if completed).")
@click.option("--poll", type=float, default=1.0, show_default=True, help="Seconds between polls.")
@click.option("--timeout", type=float, help="With --wait: give up after this many seconds.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the run id.")
@pass_target
@_api_errors
def start(
    target: Target,
    blueprint: str,
    context_arg: str | None,
    run_id: str | None,
    wait: bool,
    poll: float,
    timeout: float | None,
    quiet: bool,
) -> None:
    """Start a run of BLUEPRINT."""
    context = _json_argument(context_arg, "--context")
    if context is not None and not isinstance(context, dict):
        raise click.BadParameter("--context must be a JSON object")
    client = target.client()
    accepted = client.start(blueprint, context, run_id=run_id)
    if quiet:
        click.echo(accepted.run_id)
    else:
        _consoles.out.print(
            f"started run [bold]{accepted.run_id}[/bold] of {blueprint} ({accepted.status})"
        )
    if wait:
        sys.exit(_watch(client, accepted.run_id, poll, timeout))


@cli.command()
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON answer.")
@pass_target
@_api_errors
def get(target: Target, run_id: str, as_json: bool) -> None:
    """Show a run: status, nodes, outputs, error."""
    run = target.client().get(run_id)
    if as_json:
        _print_json(run.model_dump(by_alias=True, exclude_none=True))
    else:
        _consoles.out.print(render.run_view(run))


@cli.command()
@click.argument("run_id")
@click.option("--poll", type=float, default=1.0, show_default=True, help="Seconds between polls.")
@click.option("--timeout", type=float, help="Give up after this many seconds (exit 4).")
@pass_target
@_api_errors
def watch(target: Target, run_id: str, poll: float, timeout: float | None) -> None:
    """Follow a run live; exit 0 when it completes, non-zero otherwise."""
    sys.exit(_watch(target.client(), run_id, poll, timeout))


@cli.command()
@click.option(
    "--status",
    type=click.Choice([status.value for status in RUN_STATUSES]),
    help="Only runs with this status.",
)
@click.option("--blueprint", metavar="ID", help="Only runs of this blueprint.")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="How many runs, newest first.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines, one run per line.")
@pass_target
@_api_errors
def runs(
    target: Target, status: str | None, blueprint: str | None, limit: int, as_json: bool
) -> None:
    """List runs, newest first."""
    found = list(target.client().iter_runs(status=status, blueprint_id=blueprint, limit=limit))
    if as_json:
        for run in found:
            click.echo(json.dumps(run.model_dump(by_alias=True, exclude_none=True)))
    elif found:
        _consoles.out.print(render.runs_table(found))
    else:
        _consoles.out.print("no runs")


@cli.command()
@click.argument("run_id")
@click.option("--node", "node_id", metavar="ID", help="The waiting node (if more than one waits).")
@click.option("--action", metavar="A", help="Routes the waiting node's edges (e.g. approve).")
@click.option("--output", "output_arg", metavar="JSON|@FILE", help="The waiting node's output.")
@pass_target
@_api_errors
def resume(
    target: Target,
    run_id: str,
    node_id: str | None,
    action: str | None,
    output_arg: str | None,
) -> None:
    """Resume an awaiting run."""
    output = _json_argument(output_arg, "--output")
    accepted = target.client().resume(run_id, node_id=node_id, action=action, output=output)
    where = f" at {accepted.node_id}" if accepted.node_id else ""
    _consoles.out.print(f"resumed run [bold]{run_id}[/bold]{where} ({accepted.status})")


@cli.command()
@click.argument("run_id")
@pass_target
@_api_errors
def cancel(target: Target, run_id: str) -> None:
    """Cancel a run: no node of it starts from now on."""
    accepted = target.client().cancel(run_id)
    _consoles.out.print(f"cancelled run [bold]{run_id}[/bold] ({accepted.status})")


@cli.command()
@click.argument("run_id")
@click.option("--wait", is_flag=True, help="Follow the run until it ends.")
@pass_target
@_api_errors
def redrive(target: Target, run_id: str, wait: bool) -> None:
    """Continue a failed run from its failed nodes, keeping every committed result."""
    client = target.client()
    accepted = client.redrive(run_id)
    _consoles.out.print(f"redriving run [bold]{run_id}[/bold] ({accepted.status or 'accepted'})")
    if wait:
        sys.exit(_watch(client, run_id, 1.0, None))


@cli.command()
@click.argument("run_id")
@click.option("--limit", type=click.IntRange(1, 100), help="Page size.")
@click.option("--next-token", metavar="TOKEN", help="From the previous page.")
@pass_target
@_api_errors
def nodes(target: Target, run_id: str, limit: int | None, next_token: str | None) -> None:
    """Print one page of a run's node results as JSON."""
    page = target.client().nodes(run_id, limit=limit, next_token=next_token)
    _print_json(page.model_dump(by_alias=True, exclude_none=True))


@cli.command()
@click.argument("run_id")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write the diagram here (default: print it).",
)
@pass_target
@_api_errors
def graph(target: Target, run_id: str, out: Path | None) -> None:
    """The run's Mermaid diagram, nodes coloured by status."""
    from .app_lookup import diagram

    run = target.client().get(run_id)
    text, exact = diagram(run)
    if not exact:
        _consoles.err.print(
            f"[yellow]blueprint {run.blueprint_id!r} is not in the app module here "
            "(FLOWCRAFT_APP); drawing the run's nodes without edges[/yellow]",
            markup=True,
        )
    if out is None:
        click.echo(text)
    else:
        out.write_text(text, encoding="utf-8")
        _consoles.out.print(f"wrote {out} (paste it into https://mermaid.live or a Markdown file)")


@cli.command()
@click.argument("name")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Project folder.",
)
@click.option(
    "--app",
    "app_name",
    metavar="MODULE",
    help="App package to add it to (default: FLOWCRAFT_APP or workflows).",
)
def new(name: str, directory: Path, app_name: str | None) -> None:
    """Scaffold workflow NAME: blueprint, node code and a test."""
    from flowcraft_core.app import app_module_name

    from .scaffold import ScaffoldError, scaffold

    try:
        result = scaffold(name, directory, app_name or app_module_name())
    except ScaffoldError as error:
        fail(str(error), code=2)
    for path in result.written:
        _consoles.out.print(f"created {path}")
    for line in result.next_steps:
        click.echo(line)


def main() -> None:
    """Entry point of the ``flowcraft`` console script."""
    cli(prog_name="flowcraft")
