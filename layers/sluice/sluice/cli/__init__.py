"""``sluice``: the command line over the client SDK.

    sluice trigger TASK --payload JSON [--idempotency-key K]
    sluice runs get ID
    sluice batch upload FILE.ndjson [--stage-above N]
    sluice batch status ID
    sluice stream tail RUN KEY [--last-event-id ID] [--no-follow] [--json]

Each resource is a module with its own typer app, added here: a new one is one more module and
one more ``add_typer`` line. Answers go to stdout as JSON; progress and errors go to stderr. Exit
codes are in ``sluice.cli.session``.

Not a Lambda concern: the layer never imports this package, and typer (with rich) is the ``cli``
extra, not a layer requirement.
"""

from __future__ import annotations

import typer

from sluice.cli import batch, runs, stream
from sluice.cli.session import ConnectionOptions, connection_options

app = typer.Typer(
    help="Trigger runs and batches on a Sluice API, read them back, and follow run streams.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.callback()(connection_options)
app.command("trigger")(runs.trigger)
app.add_typer(runs.app, name="runs")
app.add_typer(batch.app, name="batch")
app.add_typer(stream.app, name="stream")


def main() -> None:
    app()


__all__ = ["ConnectionOptions", "app", "main"]
