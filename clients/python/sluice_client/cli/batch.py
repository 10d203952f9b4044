"""``sluice batch upload`` and ``sluice batch status``."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from sluice_client.batches import MAX_REQUEST_ITEMS, MAX_STAGED_ITEMS, STAGE_ABOVE_ITEMS
from sluice_client.cli.runs import check_idempotency_key
from sluice_client.cli.session import Exit, client, fail, print_json, stderr

app = typer.Typer(help="Trigger and read batches.", no_args_is_help=True)


@app.command("upload")
def upload(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Argument(metavar="FILE.ndjson", help='one {"task", "payload"?, "options"?} a line')
    ],
    idempotency_key: Annotated[str | None, typer.Option(help="the same key returns the same batch")] = None,
    stage_above: Annotated[
        int,
        typer.Option(
            min=0,
            max=MAX_REQUEST_ITEMS,
            help=f"upload through S3 staging when the file has more items than this (at most "
            f"{MAX_REQUEST_ITEMS}, the most the API takes streamed)",
        ),
    ] = STAGE_ABOVE_ITEMS,
    progress: Annotated[bool, typer.Option(help="draw a progress bar on a terminal")] = True,
) -> None:
    """Trigger one run per line of FILE (indexed by line order); prints the batch's id and mode.

    A streamed batch is sealed when this returns; a staged one is ingested by the platform after
    the upload: follow it with `sluice batch status ID`.
    """
    check_idempotency_key(idempotency_key)
    items = read_items(file)
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=stderr,
        disable=not progress or not stderr.is_terminal,
        transient=False,
    )
    with client(ctx) as sluice, bar:
        sluice.batches.stage_above_items = stage_above
        job = bar.add_task(f"{file.name}", total=None)
        sluice.transport.sleep = shown_waits(sluice.transport.sleep, bar, job, file.name)
        result = sluice.batches.trigger(
            items,
            idempotency_key=idempotency_key,
            progress=lambda sent, total: bar.update(job, completed=sent, total=total),
        )
    print_json(
        {
            "id": result.id,
            "runCount": result.run_count,
            "isCached": result.is_cached,
            "sealed": result.sealed,
            "staged": result.staged,
        }
    )


@app.command("status")
def status(
    ctx: typer.Context,
    batch_id: Annotated[str, typer.Argument(metavar="ID")],
    runs_offset: Annotated[int, typer.Option(min=0, help="the first run id to list")] = 0,
) -> None:
    """Print a batch's status, counts and a page of its run ids."""
    with client(ctx) as sluice:
        print_json(sluice.batches.retrieve(batch_id, runs_offset))


def read_items(file: Path) -> list[dict[str, Any]]:
    """The file's items; a line that is not an item object is a usage error naming the line."""
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        fail(Exit.USAGE, f"cannot read {file}: {exc}")
    items: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            fail(Exit.USAGE, f"{file}:{number}: not JSON: {exc}")
        if not isinstance(item, dict) or not isinstance(item.get("task"), str) or not item["task"]:
            fail(Exit.USAGE, f'{file}:{number}: an item is an object with a "task" string')
        if not isinstance(item.get("options", {}), dict):
            fail(Exit.USAGE, f'{file}:{number}: "options" must be an object')
        items.append(item)
    if not items:
        fail(Exit.USAGE, f"{file} has no items")
    if len(items) > MAX_STAGED_ITEMS:
        fail(
            Exit.USAGE,
            f"{file} has {len(items)} items; a batch takes at most {MAX_STAGED_ITEMS}: split the file",
        )
    return items


def shown_waits(
    sleep: Callable[[float], None], bar: Progress, job: TaskID, label: str
) -> Callable[[float], None]:
    """The SDK's sleep before a retry, counted down on the bar (or said once on a plain stderr):
    a rate-limited upload may wait a minute for its Retry-After, which looked like a hang."""

    def wait(seconds: float) -> None:
        reason = "the API is rate limiting or busy"
        if bar.disable:
            stderr.print(f"{label}: waiting {math.ceil(seconds)}s to retry ({reason})")
        left = seconds
        while left > 0:
            bar.update(job, description=f"{label}: waiting {math.ceil(left)}s to retry ({reason})")
            step = min(1.0, left)
            sleep(step)
            left -= step
        bar.update(job, description=label)

    return wait
