"""Command groups that live in other packages and load only when invoked.

``sluice admin`` operates a stack from the inside: it needs the server package, which a client
install does not have, and importing the server (boto3, Powertools, the engine) would cost every
other command its start time. So the group is listed here with the module that defines it and a
line of help, and its module is imported only when the group is invoked.
"""

from __future__ import annotations

import importlib
from typing import Any

import typer

from sluice_client.cli.session import Exit, fail

# name -> ("module:attribute" of its typer app, in the server package; its line in `sluice --help`)
PLUGINS = {"admin": ("sluice.admin.cli:app", "Operate a stack (from the Sluice server package).")}

# The plugin parses its own arguments and options, --help included.
PASS_THROUGH: dict[str, Any] = {
    "allow_extra_args": True,
    "ignore_unknown_options": True,
    "help_option_names": [],
}


def invoke(ctx: typer.Context) -> None:
    """Import the plugin named by the command's name and run it on the arguments that follow it,
    as a subcommand of this CLI (so it sees the connection options in ``ctx.obj``)."""
    name = ctx.info_name or ""
    target, _ = PLUGINS[name]
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not module_name.startswith(exc.name):
            raise  # the plugin is there but one of its own imports is missing: show that error
        fail(
            Exit.USAGE,
            f"`sluice {name}` comes from the Sluice server package, and {module_name} is not installed "
            "here: run it from a checkout of the repository after `make venv`",
        )
    command = typer.main.get_command(getattr(module, attribute))
    # In this command's place: a child of the root, with the root's --help back.
    root = ctx.find_root()
    with command.make_context(
        name, list(ctx.args), parent=root, help_option_names=root.help_option_names
    ) as plugin_ctx:
        command.invoke(plugin_ctx)
