"""The devstack CLI around a running stack: keys create, invoke, status, up --detach and down; and
`sluice admin` on it, as on a deployed stack."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from devstack.testing.launcher import DevStack, run_cli
from devstack.testing.processes import descendants
from sluice_client.cli import app

pytestmark = pytest.mark.devstack

ROOT = Path(__file__).resolve().parents[2]
POST_EVENT = ROOT / "events" / "trigger_intake_post.json"
GET_EVENT = ROOT / "events" / "trigger_intake_get_run.json"


def test_keys_create_prints_a_working_key_and_sets_flags(devstack: DevStack) -> None:
    org = f"org_{uuid.uuid4().hex[:8]}"
    done = devstack.cli(
        "keys",
        "create",
        "--org",
        org,
        "--env",
        "env_cli",
        "--flag",
        "mollifierEnabled=true",
        "--flag",
        "limit=5",
        "--flag",
        "name=plain text",
    )
    assert done.returncode == 0, done.stderr
    created = json.loads(done.stdout)
    assert (created["orgId"], created["envId"]) == (org, "env_cli")
    assert created["apiKey"].startswith("sk_dev_")

    res = httpx.post(
        devstack.url("/api/v1/tasks/cli/trigger"),
        json={"payload": {}},
        headers={"authorization": f"Bearer {created['apiKey']}"},
    )
    assert res.status_code == 200, res.text

    item = devstack.client("dynamodb").get_item(
        TableName=devstack.table("ApiKeysTable"), Key={"pk": {"S": f"ORG#{org}"}}
    )["Item"]
    assert json.loads(item["flags"]["S"]) == {"mollifierEnabled": True, "limit": 5, "name": "plain text"}


def test_keys_create_refuses_an_id_that_is_not_one(devstack: DevStack) -> None:
    done = devstack.cli("keys", "create", "--org", "org/a", "--env", "env_cli")
    assert done.returncode == 2 and "invalid organization id 'org/a'" in done.stderr, done.stderr
    assert done.stdout == ""


def test_sluice_admin_makes_a_working_key_on_the_stack(devstack: DevStack) -> None:
    """The deployed stack's path (README: Deploying, and the first tenant) on moto's server."""
    org = f"org_{uuid.uuid4().hex[:8]}"
    target = [
        "admin",
        "--endpoint-url",
        devstack.aws_endpoint("dynamodb"),
        "--region",
        str(devstack.info["region"]),
        "--table",
        devstack.table("ApiKeysTable"),
    ]

    def admin(*args: str) -> Any:
        done = CliRunner().invoke(
            app, [*target, *args], env={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
        )
        assert done.exit_code == 0, done.output
        return json.loads(done.stdout)

    admin("orgs", "create", "--org", org)
    admin("envs", "create", "--org", org, "--env", "prod", "--type", "PRODUCTION")
    created = admin("keys", "create", "--org", org, "--env", "prod")
    res = httpx.post(
        devstack.url("/api/v1/tasks/admin/trigger"),
        json={"payload": {}},
        headers={"authorization": f"Bearer {created['apiKey']}"},
    )
    assert res.status_code == 200, res.text
    listed = admin("keys", "list", "--org", org, "--env", "prod")
    assert [key["keyId"] for key in listed] == [created["keyId"]]


def test_invoke_runs_the_handler_against_the_stack(devstack: DevStack) -> None:
    post = devstack.cli("invoke", "trigger_intake", "--event", str(ROOT / "events/trigger_intake_post.json"))
    assert post.returncode == 0, post.stderr
    response = json.loads(post.stdout)
    assert response["statusCode"] == 200, response
    run_id = json.loads(response["body"])["id"]

    # By logical id, with the event on stdin: the run is in the stack's tables.
    event = json.loads((ROOT / "events/trigger_intake_get_run.json").read_text())
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/api/v1/runs/{run_id}"
    event["pathParameters"] = {"runId": run_id}
    got = devstack.cli("invoke", "TriggerIntakeFunction", "--event", "-", input=json.dumps(event))
    assert got.returncode == 0, got.stderr
    assert json.loads(json.loads(got.stdout)["body"])["id"] == run_id

    sample = devstack.cli("invoke", "trigger_intake", "--event", str(GET_EVENT))
    assert json.loads(sample.stdout)["statusCode"] == 404


def test_invoke_reports_an_unknown_function(devstack: DevStack) -> None:
    done = devstack.cli("invoke", "no_such_function", "--event", str(POST_EVENT))
    assert done.returncode != 0 and "no_such_function" in done.stderr


def test_up_detach_status_and_down(tmp_path: Path) -> None:
    state = tmp_path / "state"
    # --no-warm: the warm start is test_devstack_lifecycle's; this is about detaching and finding.
    up = run_cli(
        "up", "--detach", "--port", "0", "--no-schedules", "--no-warm", "--state-dir", str(state), timeout=120
    )
    assert up.returncode == 0, up.stderr
    info = json.loads(up.stdout)
    pid = info["pid"]
    children = descendants(pid)
    assert children, "a running stack has redis-server and moto"
    assert httpx.get(info["apiUrl"] + "/nowhere").status_code == 404

    status = run_cli("status", "--state-dir", str(state))
    assert status.returncode == 0 and json.loads(status.stdout)["pid"] == pid

    down = run_cli("down", "--state-dir", str(state))
    assert down.returncode == 0, down.stderr
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    assert not (state / "stack.json").exists()
    assert run_cli("status", "--state-dir", str(state)).returncode == 1
