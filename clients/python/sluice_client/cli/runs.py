"""``sluice trigger`` and ``sluice runs get|list|cancel|replay``."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from sluice_client.cli.session import Exit, client, fail, print_json
from sluice_client.runs import IDEMPOTENCY_KEY_MAX_CHARS

app = typer.Typer(help="Read, list, cancel and replay runs.", no_args_is_help=True)


def trigger(
    ctx: typer.Context,
    task: Annotated[str, typer.Argument(help="the task id")],
    payload: Annotated[str, typer.Option(help="the payload, as JSON")] = "null",
    idempotency_key: Annotated[str | None, typer.Option(help="the same key returns the same run")] = None,
) -> None:
    """Trigger TASK once; prints {"id", "isCached"}."""
    value = parse_json(payload, "--payload")
    check_idempotency_key(idempotency_key)
    options = {"idempotencyKey": idempotency_key} if idempotency_key else {}
    with client(ctx) as sluice:
        run = sluice.trigger(task, value, **options)
    answer: dict[str, Any] = {"id": run.id, "isCached": run.is_cached}
    if run.notice:
        answer["notice"] = run.notice
    print_json(answer)


@app.command("get")
def get(ctx: typer.Context, run_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Print a run as GET /api/v1/runs/{id} returns it."""
    with client(ctx) as sluice:
        print_json(sluice.runs.retrieve(run_id))


@app.command("list")
def list_runs(
    ctx: typer.Context,
    *,
    status: Annotated[str | None, typer.Option(help="statuses, comma-separated (any of them)")] = None,
    task: Annotated[str | None, typer.Option(help="task ids, comma-separated")] = None,
    tag: Annotated[str | None, typer.Option(help="tags, comma-separated (runs with any)")] = None,
    batch: Annotated[str | None, typer.Option(help="a batch id")] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="an idempotency key")] = None,
    created_from: Annotated[str | None, typer.Option("--from", help="created at or after (ISO-8601)")] = None,
    created_to: Annotated[str | None, typer.Option("--to", help="created at or before (ISO-8601)")] = None,
    period: Annotated[str | None, typer.Option(help="created within this duration, e.g. 1d")] = None,
    limit: Annotated[int, typer.Option(min=1, help="runs a page (1-100)")] = 25,
    after: Annotated[str | None, typer.Option(help="the page after this cursor (a page's next)")] = None,
) -> None:
    """Print one page of runs, newest first: {"data", "pagination": {"next"?, "previous"?}}."""
    with client(ctx) as sluice:
        print_json(
            sluice.runs.list(
                status=status, task=task, tag=tag, batch=batch, idempotency_key=idempotency_key,
                created_from=created_from, created_to=created_to, period=period, page_size=limit,
                after=after,
            )
        )  # fmt: skip


@app.command("cancel")
def cancel(ctx: typer.Context, run_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Cancel a queued, delayed, buffered or executing run; prints {"id"}."""
    with client(ctx) as sluice:
        print_json(sluice.runs.cancel(run_id))


@app.command("replay")
def replay(ctx: typer.Context, run_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Trigger a new run with the run's task, payload and options; prints {"id"}."""
    with client(ctx) as sluice:
        print_json(sluice.runs.replay(run_id))


def parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        fail(Exit.USAGE, f"{what} is not JSON: {exc}")


def check_idempotency_key(key: str | None) -> None:
    """A key the server would refuse (idempotency_key_too_long) is a usage error before any request."""
    if key is not None and len(key) > IDEMPOTENCY_KEY_MAX_CHARS:
        fail(
            Exit.USAGE,
            f"--idempotency-key has {len(key)} characters; the API takes at most {IDEMPOTENCY_KEY_MAX_CHARS}",
        )
