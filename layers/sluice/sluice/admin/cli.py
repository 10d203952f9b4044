"""``sluice admin``: tenant administration on a stack's API keys table (``sluice.auth.admin``).

    sluice admin [--stack NAME | --table TABLE] [--region R] [--endpoint-url URL] COMMAND
    sluice admin orgs create --org ORG
    sluice admin envs create --org ORG --env ENV [--type DEVELOPMENT|STAGING|PREVIEW|PRODUCTION]
    sluice admin keys create|list --org ORG --env ENV
    sluice admin keys revoke --org ORG --env ENV KEY_ID
    sluice admin keys rotate --org ORG --env ENV KEY_ID [--grace 1h]
    sluice admin flags get --org ORG
    sluice admin flags set --org ORG NAME=VALUE ... [--replace]
    sluice admin flags unset --org ORG NAME ...

Authorised by the caller's AWS credentials (boto3's usual chain: AWS_PROFILE, environment, SSO,
instance role), never by an API key: whoever may write the table administers its tenants. This
module is the server package's (boto3), and typer's: the client command line, which brings typer,
loads it only when ``admin`` is invoked (``sluice_client.cli.plugins``); no function imports it.
Answers go to stdout as JSON, errors to stderr; exit codes are ``Exit``'s.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import IntEnum
from typing import Annotated, Any, NoReturn

import typer
from botocore.exceptions import BotoCoreError, ClientError

from sluice import aws
from sluice.auth.admin import AdminError, InvalidInput, TenantAdmin, flag_value
from sluice.engine.durations import parse_duration

# The stack output naming the API keys table (template.yaml).
TABLE_OUTPUT = "ApiKeysTableName"


class Exit(IntEnum):
    OK = 0
    REFUSED = 1  # exists already, not found, revoked already
    USAGE = 2  # bad arguments or ids, no table named (click's own code for usage)
    AWS = 3  # AWS refused or could not be reached: credentials, access, region, table


@dataclass(frozen=True)
class Target:
    table: str | None
    stack: str | None
    region: str | None
    endpoint_url: str | None


app = typer.Typer(
    help="Tenant administration with your AWS credentials: organizations, environments, API keys "
    "and organization flags in a stack's API keys table.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
orgs = typer.Typer(help="Organizations.", no_args_is_help=True)
envs = typer.Typer(help="Environments of an organization.", no_args_is_help=True)
keys = typer.Typer(help="API keys of an environment (a key is shown once).", no_args_is_help=True)
flags = typer.Typer(help="Organization feature flags (e.g. mollifierEnabled).", no_args_is_help=True)
for name, sub in (("orgs", orgs), ("envs", envs), ("keys", keys), ("flags", flags)):
    app.add_typer(sub, name=name)

Org = Annotated[str, typer.Option("--org", help="organization id", show_default=False)]
Env = Annotated[str, typer.Option("--env", help="environment id", show_default=False)]
KeyId = Annotated[str, typer.Argument(help="the key's keyId, as `keys list` shows it", show_default=False)]


@app.callback()
def target(
    ctx: typer.Context,
    *,
    table: Annotated[
        str | None, typer.Option(envvar="SLUICE_API_KEYS_TABLE", help="the API keys table's name")
    ] = None,
    stack: Annotated[
        str | None,
        typer.Option(
            envvar="SLUICE_STACK_NAME", help=f"a deployed stack: its {TABLE_OUTPUT} output names the table"
        ),
    ] = None,
    region: Annotated[
        str | None, typer.Option(envvar="AWS_REGION", help="AWS region (default: boto3's configuration)")
    ] = None,
    endpoint_url: Annotated[
        str | None, typer.Option(envvar="AWS_ENDPOINT_URL", help="AWS endpoint, e.g. devstack's moto")
    ] = None,
) -> None:
    ctx.obj = Target(table, stack, region, endpoint_url)


def _fail(code: Exit, message: str) -> NoReturn:
    sys.stderr.write(f"error: {message}\n")
    raise typer.Exit(code)


def _print(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2) + "\n")


@contextmanager
def _admin(ctx: typer.Context) -> Iterator[TenantAdmin]:
    """The table's administration; its refusals and AWS's failures become messages and exit codes."""
    to = ctx.find_object(Target) or Target(None, None, None, None)
    try:
        table = _table(to)
        yield TenantAdmin(aws.client("dynamodb", region=to.region, endpoint=to.endpoint_url), table)
    except InvalidInput as exc:
        _fail(Exit.USAGE, str(exc))
    except AdminError as exc:
        _fail(Exit.REFUSED, str(exc))
    except (ClientError, BotoCoreError) as exc:
        _fail(Exit.AWS, f"AWS: {exc}")


def _table(to: Target) -> str:
    if to.table:
        return to.table
    if not to.stack:
        _fail(
            Exit.USAGE,
            "no table: pass --stack NAME (a deployed stack) or --table NAME "
            "(or set SLUICE_STACK_NAME or SLUICE_API_KEYS_TABLE)",
        )
    cloudformation = aws.client("cloudformation", region=to.region, endpoint=to.endpoint_url)
    described = cloudformation.describe_stacks(StackName=to.stack)["Stacks"][0]
    for output in described.get("Outputs", []):
        if output.get("OutputKey") == TABLE_OUTPUT:
            return str(output["OutputValue"])
    _fail(
        Exit.USAGE,
        f"stack {to.stack} has no {TABLE_OUTPUT} output (deployed before `sluice admin`? "
        "deploy again, or pass --table)",
    )


@orgs.command("create")
def orgs_create(ctx: typer.Context, org: Org) -> None:
    """Create an organization (an existing one is refused)."""
    with _admin(ctx) as admin:
        admin.create_organization(org)
    _print({"orgId": org})


@envs.command("create")
def envs_create(
    ctx: typer.Context,
    org: Org,
    env: Env,
    env_type: Annotated[
        str, typer.Option("--type", help="DEVELOPMENT, STAGING, PREVIEW or PRODUCTION (sk_prod_ keys)")
    ] = "DEVELOPMENT",
) -> None:
    """Create an environment of an existing organization (an existing one is refused)."""
    with _admin(ctx) as admin:
        admin.create_environment(org, env, env_type)
    _print({"orgId": org, "envId": env, "envType": env_type.upper()})


@keys.command("create")
def keys_create(ctx: typer.Context, org: Org, env: Env) -> None:
    """Create an API key for an existing environment; prints it, the only time it is shown."""
    with _admin(ctx) as admin:
        new = admin.create_key(org, env)
        _print({"apiKey": new.api_key, **new.info.to_json(admin.clock())})


@keys.command("list")
def keys_list(ctx: typer.Context, org: Org, env: Env) -> None:
    """The environment's keys, revoked ones included (ids and starts, never a key)."""
    with _admin(ctx) as admin:
        now = admin.clock()
        _print([info.to_json(now) for info in admin.list_keys(org, env)])


@keys.command("revoke")
def keys_revoke(ctx: typer.Context, org: Org, env: Env, key_id: KeyId) -> None:
    """Revoke a key now: refused from now on, by each function within SLUICE_AUTH_CACHE_TTL_S."""
    with _admin(ctx) as admin:
        _print(admin.revoke_key(org, env, key_id).to_json(admin.clock()))


@keys.command("rotate")
def keys_rotate(
    ctx: typer.Context,
    org: Org,
    env: Env,
    key_id: KeyId,
    grace: Annotated[
        str, typer.Option(help="how long the old key keeps working, e.g. 10m, 1h (default: revoked now)")
    ] = "0s",
) -> None:
    """Replace a key: a new one, and the old one revoked after --grace (both or neither)."""
    try:
        grace_period = parse_duration(grace)
    except ValueError as exc:
        _fail(Exit.USAGE, f"--grace: {exc}")
    with _admin(ctx) as admin:
        new, old = admin.rotate_key(org, env, key_id, grace=grace_period)
        now = admin.clock()
        _print({"apiKey": new.api_key, **new.info.to_json(now), "replaced": old.to_json(now)})


@flags.command("get")
def flags_get(ctx: typer.Context, org: Org) -> None:
    """The organization's flags."""
    with _admin(ctx) as admin:
        _print(admin.get_flags(org))


@flags.command("set")
def flags_set(
    ctx: typer.Context,
    org: Org,
    pairs: Annotated[
        list[str],
        typer.Argument(metavar="NAME=VALUE...", help="values parse as JSON (true, 5), else are strings"),
    ],
    replace: Annotated[
        bool, typer.Option(help="the flags become exactly these (default: set these, keep the others)")
    ] = False,
) -> None:
    """Set organization flags, keeping the others; prints the flags as stored."""
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            _fail(Exit.USAGE, f"expected NAME=VALUE, got {pair!r}")
        values[name] = flag_value(value)
    with _admin(ctx) as admin:
        _print(admin.update_flags(org, values, replace=replace))


@flags.command("unset")
def flags_unset(
    ctx: typer.Context, org: Org, names: Annotated[list[str], typer.Argument(metavar="NAME...")]
) -> None:
    """Remove organization flags; prints the flags as stored."""
    with _admin(ctx) as admin:
        _print(admin.update_flags(org, unset=names))
