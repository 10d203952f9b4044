"""`sluice admin`: a command group of the server package, loaded only when invoked."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest
import typer
from typer.testing import CliRunner

from sluice_client.cli import app
from sluice_client.cli.session import Exit

runner = CliRunner()


def fake_plugin(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str | None]]:
    """A server package whose ``sluice.admin.cli`` is a typer app that records what it was given."""
    calls: list[tuple[str, str | None]] = []
    plugin = typer.Typer(no_args_is_help=True)

    @plugin.command("keys")
    def keys(ctx: typer.Context, env: str = typer.Option(...)) -> None:
        calls.append((env, ctx.find_root().params.get("api_url")))
        print(f"keys of {env}")

    @plugin.command("tenants")
    def tenants() -> None:
        calls.append(("tenants", None))

    module = types.ModuleType("sluice.admin.cli")
    module.app = plugin  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sluice.admin", types.ModuleType("sluice.admin"))
    monkeypatch.setitem(sys.modules, "sluice.admin.cli", module)
    return calls


def test_admin_runs_the_server_package_group_with_its_own_options(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_plugin(monkeypatch)
    result = runner.invoke(app, ["--api-url", "http://api", "admin", "keys", "--env", "prod"])
    assert result.exit_code == 0, result.output
    assert "keys of prod" in result.output
    assert calls == [("prod", "http://api")]


def test_admin_help_is_the_plugins_own(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_plugin(monkeypatch)
    result = runner.invoke(app, ["admin", "--help"])
    assert result.exit_code == 0, result.output
    assert "keys" in result.output and "tenants" in result.output


def test_admin_without_the_server_package_says_where_it_comes_from(monkeypatch: pytest.MonkeyPatch) -> None:
    # An import of either raises ModuleNotFoundError (the real one may be imported already).
    monkeypatch.setitem(sys.modules, "sluice.admin", None)
    monkeypatch.setitem(sys.modules, "sluice.admin.cli", None)
    result = runner.invoke(app, ["admin", "keys"])
    assert result.exit_code == Exit.USAGE
    assert "server package" in result.output and "sluice.admin.cli" in result.output


def test_the_cli_starts_without_the_server_package() -> None:
    """`sluice --help` lists admin but imports nothing of the server (nor boto3)."""
    code = (
        "import sys; from sluice_client.cli import main; sys.argv = ['sluice', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in {'sluice', 'boto3', 'botocore'})\n"
        "print('LOADED', loaded)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "admin" in out
    assert "LOADED []" in out
