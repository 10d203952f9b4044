"""The `sluice` command line against the session's devstack: the installed console script finds
the stack through .devstack/stack.json, and each command's answer is the API's."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from devstack.testing.launcher import DevStack
from sluice.cli import app
from sluice.cli.session import Exit

pytestmark = pytest.mark.devstack


def sluice(stack: DevStack, *args: str, key: str | None = None) -> Any:
    env = {"SLUICE_API_URL": stack.api_url, "SLUICE_API_KEY": key or stack.api_key}
    return CliRunner().invoke(app, list(args), env=env)


def test_the_console_script_triggers_and_reads_a_run_of_the_running_stack(
    devstack: DevStack, tmp_path: Path
) -> None:
    (tmp_path / ".devstack").mkdir()
    shutil.copy(devstack.state_dir / "stack.json", tmp_path / ".devstack" / "stack.json")
    script = Path(sys.executable).parent / "sluice"  # installed by `pip install -e .`
    env = {"PATH": str(script.parent)}  # and no SLUICE_API_*: the stack file is what it finds

    def run(*args: str) -> Any:
        done = subprocess.run(
            [script, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    run_id = run("trigger", "cli", "--payload", '{"n": 1}', "--idempotency-key", "cli-once")["id"]
    assert run("trigger", "cli", "--payload", '{"n": 1}', "--idempotency-key", "cli-once") == {
        "id": run_id, "isCached": True,
    }
    got = run("runs", "get", run_id)
    assert got["id"] == run_id and got["payload"] == {"n": 1} and got["taskId"] == "cli"


def test_a_bad_key_and_an_unknown_run_exit_rejected(devstack: DevStack) -> None:
    done = sluice(devstack, "runs", "get", "run_nope", key="sk_dev_not_a_key")
    assert done.exit_code == Exit.REJECTED and "401" in done.stderr and "--api-key" in done.stderr
    done = sluice(devstack, "runs", "get", "run_nope")
    assert done.exit_code == Exit.REJECTED and "404" in done.stderr


def test_an_api_nobody_listens_on_exits_unreachable() -> None:
    env = {"SLUICE_API_URL": "http://127.0.0.1:9", "SLUICE_API_KEY": "k"}
    done = CliRunner().invoke(app, ["--max-attempts", "1", "runs", "get", "r"], env=env)
    assert done.exit_code == Exit.UNREACHABLE and "cannot reach http://127.0.0.1:9" in done.stderr


def wait_for_status(stack: DevStack, key: str, batch_id: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 180
    while True:
        done = sluice(stack, "batch", "status", batch_id, key=key)
        assert done.exit_code == 0, done.output
        got: dict[str, Any] = json.loads(done.stdout)
        if got["status"] == status or time.monotonic() > deadline:
            return got
        time.sleep(0.5)


@pytest.mark.parametrize(("stage_above", "staged"), [("1000", False), ("5", True)])
def test_batch_upload_then_status_until_every_run_exists(
    devstack: DevStack, tmp_path: Path, stage_above: str, staged: bool
) -> None:
    key = devstack.create_key("org_cli", f"env_cli_{stage_above}")
    file = tmp_path / "items.ndjson"
    file.write_text("".join(json.dumps({"task": "cli", "payload": {"i": i}}) + "\n" for i in range(12)))
    done = sluice(devstack, "batch", "upload", str(file), "--stage-above", stage_above, key=key)
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout)
    assert result["runCount"] == 12 and result["staged"] is staged and result["sealed"] is not staged
    got = wait_for_status(devstack, key, result["id"], "COMPLETED")
    assert got["status"] == "COMPLETED" and got["processedCount"] == 12, got
