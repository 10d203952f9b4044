"""`sluice admin` through typer's CliRunner on moto: the first organization, environment and key
of a stack, the key's life, flags, how the table is found and the exit code of each failure."""

from __future__ import annotations

import json
import re
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner, Result

from sluice.admin.cli import TABLE_OUTPUT, Exit
from sluice.auth import authenticate
from sluice.config import reload_settings
from sluice.errors import Unauthorized
from sluice_client.cli import app
from tests.conftest import AwsStack

runner = CliRunner()


@pytest.fixture
def table(aws: AwsStack, monkeypatch: pytest.MonkeyPatch) -> str:
    """The table's name; the functions' settings (SLUICE_API_KEYS_TABLE among them) stay set, for
    ``authenticate``, but the command line is always told."""
    monkeypatch.delenv("SLUICE_STACK_NAME", raising=False)
    monkeypatch.setenv("SLUICE_AUTH_CACHE_TTL_S", "0")
    reload_settings()
    return str(aws.stack.physical_name("ApiKeysTable"))


def admin(*args: str, table: str | None = None) -> Result:
    return runner.invoke(app, ["admin", *(["--table", table] if table else []), *args])


def ok(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_the_first_tenant_of_a_stack_and_its_key_life(table: str) -> None:
    assert ok(admin("orgs", "create", "--org", "acme", table=table)) == {"orgId": "acme"}
    env = ok(admin("envs", "create", "--org", "acme", "--env", "prod", "--type", "production", table=table))
    assert env == {"orgId": "acme", "envId": "prod", "envType": "PRODUCTION"}
    created = ok(admin("keys", "create", "--org", "acme", "--env", "prod", table=table))
    assert created["apiKey"].startswith("sk_prod_") and created["active"] is True
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", created["createdAt"])
    assert authenticate({"authorization": f"Bearer {created['apiKey']}"}).tenant == "acme/prod"

    listed = ok(admin("keys", "list", "--org", "acme", "--env", "prod", table=table))
    assert [(k["keyId"], k["start"], k["revokedAt"]) for k in listed] == [
        (created["keyId"], created["apiKey"][:12], None)
    ]
    assert created["apiKey"] not in json.dumps(listed)

    rotated = ok(
        admin(
            "keys", "rotate", "--org", "acme", "--env", "prod", created["keyId"], "--grace", "1h", table=table
        )
    )
    assert rotated["replaced"]["keyId"] == created["keyId"] and rotated["replaced"]["active"] is True
    assert authenticate({"authorization": f"Bearer {rotated['apiKey']}"}).tenant == "acme/prod"

    revoked = ok(admin("keys", "revoke", "--org", "acme", "--env", "prod", created["keyId"], table=table))
    assert revoked["active"] is False and revoked["revokedAt"] is not None
    with pytest.raises(Unauthorized):
        authenticate({"authorization": f"Bearer {created['apiKey']}"})
    listed = ok(admin("keys", "list", "--org", "acme", "--env", "prod", table=table))
    assert {k["keyId"]: k["active"] for k in listed} == {created["keyId"]: False, rotated["keyId"]: True}


def test_flags_set_get_and_unset(table: str) -> None:
    ok(admin("orgs", "create", "--org", "acme", table=table))
    assert ok(
        admin(
            "flags",
            "set",
            "--org",
            "acme",
            "mollifierEnabled=true",
            "limit=5",
            "name=plain text",
            table=table,
        )
    ) == {"mollifierEnabled": True, "limit": 5, "name": "plain text"}
    assert ok(admin("flags", "unset", "--org", "acme", "limit", table=table)) == {
        "mollifierEnabled": True,
        "name": "plain text",
    }
    assert ok(admin("flags", "set", "--org", "acme", "--replace", "x=1", table=table)) == {"x": 1}
    assert ok(admin("flags", "get", "--org", "acme", table=table)) == {"x": 1}


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["orgs", "create", "--org", "a/b"], Exit.USAGE, "invalid organization id"),
        (["envs", "create", "--org", "acme", "--env", "p", "--type", "LIVE"], Exit.USAGE, "environment type"),
        (["orgs", "create", "--org", "acme"], Exit.REFUSED, "exists already"),
        (["envs", "create", "--org", "nobody", "--env", "prod"], Exit.REFUSED, "no organization"),
        (["keys", "create", "--org", "acme", "--env", "staging"], Exit.REFUSED, "no environment"),
        (["keys", "revoke", "--org", "acme", "--env", "prod", "key_00000000"], Exit.REFUSED, "no key"),
        (["keys", "rotate", "--org", "acme", "--env", "p", "key_1", "--grace", "?"], Exit.USAGE, "--grace"),
        (["flags", "set", "--org", "acme", "novalue"], Exit.USAGE, "NAME=VALUE"),
        (["flags", "get", "--org", "nobody"], Exit.REFUSED, "no organization"),
    ],
)
def test_refusals_have_their_exit_codes(table: str, args: list[str], code: Exit, says: str) -> None:
    ok(admin("orgs", "create", "--org", "acme", table=table))
    ok(admin("envs", "create", "--org", "acme", "--env", "prod", table=table))
    result = admin(*args, table=table)
    assert result.exit_code == code, result.output
    assert says in result.stderr and result.stdout == ""


def test_the_table_comes_from_a_stack_output(table: str, aws: AwsStack) -> None:
    cloudformation = boto3.client("cloudformation")
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {TABLE_OUTPUT: {"Value": table}},
    }
    cloudformation.create_stack(StackName="admin-test", TemplateBody=json.dumps(template))
    try:
        created = runner.invoke(app, ["admin", "--stack", "admin-test", "orgs", "create", "--org", "a"])
        assert ok(created) == {"orgId": "a"}
        assert ok(admin("flags", "get", "--org", "a", table=table)) == {}
    finally:
        cloudformation.delete_stack(StackName="admin-test")


def test_without_a_table_or_with_a_missing_one(table: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLUICE_API_KEYS_TABLE")
    result = admin("orgs", "create", "--org", "acme")
    assert result.exit_code == Exit.USAGE and "--stack" in result.stderr
    result = admin("orgs", "create", "--org", "acme", table="no-such-table")
    assert result.exit_code == Exit.AWS and "ResourceNotFound" in result.stderr
