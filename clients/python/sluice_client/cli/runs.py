"""``sluice trigger`` and ``sluice runs get``."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from sluice_client.cli.session import Exit, client, fail, print_json
from sluice_client.runs import IDEMPOTENCY_KEY_MAX_CHARS

app = typer.Typer(help="Read runs.", no_args_is_help=True)


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


def parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        fail(Exit.USAGE, f"{what} is not JSON: {exc}")


def check_idempotency_key(key: str | None) -> None:
    """A key the server would refuse (idempotency_key_too_long) is a usage error before any request."""
    if key is not None and len(key) > IDEMPOTENCY_KEY_MAX_CHARS:
        fail(Exit.USAGE, f"--idempotency-key has {len(key)} characters; the API takes at most "
             f"{IDEMPOTENCY_KEY_MAX_CHARS}")
