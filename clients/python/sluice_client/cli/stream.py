"""``sluice stream tail``: print a run's stream as it is written."""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Annotated

import typer

from sluice_client.cli.session import Exit, client, fail
from sluice_client.stream_calls import ENTRY_ID_PATTERN, STREAM_KEY_PATTERN

app = typer.Typer(help="Read realtime streams.", no_args_is_help=True)

# Before every entry: a tail prints the stream from its start unless told where to resume.
FROM_THE_START = "0-0"


@contextmanager
def _ctrl_c_ends_at_once() -> Iterator[None]:
    """Ctrl-C ends the tail where it stands, with exit status 130.

    Left to Python, the KeyboardInterrupt unwinds through httpx's read and the client's close
    from wherever it lands, and a tail was seen still running 30 s after SIGINT in full test runs
    on a loaded machine (not reproduced alone). A tail has nothing to finish but its output."""

    def stop(signum: int, frame: FrameType | None) -> None:
        # No flush here: the handler may run inside a write to stdout (a re-entrant flush raises),
        # and typer.echo flushes every line it prints.
        os._exit(Exit.INTERRUPTED)

    previous = signal.signal(signal.SIGINT, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@app.command("tail")
def tail(
    ctx: typer.Context,
    *,
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="the run id")],
    key: Annotated[str, typer.Argument(metavar="KEY", help="the stream's key")],
    last_event_id: Annotated[
        str | None, typer.Option(help="resume after this entry id (as --json prints it)")
    ] = None,
    follow: Annotated[
        bool, typer.Option(help="wait for chunks until the stream closes (--no-follow: print what is there)")
    ] = True,
    as_json: Annotated[
        bool, typer.Option("--json", help='print {"id", "data"} a line instead of the data')
    ] = False,
) -> None:
    """Print the chunks of RUN's stream KEY from its start, one a line as JSON, until the stream is
    closed (the run finished, or a writer closed it) or Ctrl-C.

    It follows over Server-Sent Events: the streamed reader when there is one (--stream-url, or
    devstack's streamUrl), else the API's long poll; reconnects resume where they left off. A key
    nothing has written yet is waited for.
    """
    # Refused here as the API would refuse them, before any request.
    if not re.fullmatch(STREAM_KEY_PATTERN, key):
        fail(Exit.USAGE, f"KEY {key!r} is not a stream key: 1 to 256 characters, no space or control one")
    if last_event_id is not None and not re.fullmatch(ENTRY_ID_PATTERN, last_event_id):
        fail(Exit.USAGE, f"--last-event-id {last_event_id!r} is not an entry id such as 1700000000000-0")
    start = last_event_id or FROM_THE_START
    with _ctrl_c_ends_at_once(), client(ctx) as sluice:
        streams = sluice.streams
        messages = streams.read(run_id, key, start) if follow else streams.records(run_id, key, start)
        for message in messages:
            typer.echo(json.dumps({"id": message.id, "data": message.data} if as_json else message.data))
