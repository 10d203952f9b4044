"""``sluice``: the command line over the client SDK.

    sluice trigger TASK --payload JSON [--idempotency-key K]
    sluice runs get ID
    sluice batch upload FILE.ndjson [--stage-above N]
    sluice batch status ID
    sluice stream tail RUN KEY [--last-event-id ID] [--no-follow] [--json]

Each resource is a module with its own typer app, added here: a new one is one more module and
one more ``add_typer`` line. Answers go to stdout as JSON; progress and errors go to stderr. Exit
codes are in ``sluice_client.cli.session``.

``sluice admin ...`` is a plugin from the server package, loaded only when invoked
(``sluice_client.cli.plugins``).
"""

from __future__ import annotations

import typer

from sluice_client.cli import batch, plugins, runs, stream
from sluice_client.cli.session import ConnectionOptions, connection_options

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
for name, (_, summary) in plugins.PLUGINS.items():
    plugin = app.command(name, help=summary, context_settings=plugins.PASS_THROUGH, add_help_option=False)
    plugin(plugins.invoke)


def main() -> None:
    app()


__all__ = ["ConnectionOptions", "app", "main"]
