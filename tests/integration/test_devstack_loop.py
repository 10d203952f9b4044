"""The everyday loop on devstack: a busy port reported before anything starts, handlers
reloaded while the stack runs."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import httpx
import pytest

from devstack.template import ROOT
from devstack.testing.launcher import run_cli, start_devstack

pytestmark = [pytest.mark.devstack, pytest.mark.tools]


def test_a_busy_port_is_reported_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli("up", "--port", str(port), "--no-warm", "--state-dir", str(tmp_path / "state"))
    assert done.returncode == 2
    assert f"port {port} on 127.0.0.1 is taken" in done.stderr and "--port 0" in done.stderr
    # Nothing was started or provisioned first.
    assert "redis " not in done.stderr and "provisioned" not in done.stderr, done.stderr
    assert not (tmp_path / "state" / "stack.json").exists()


# A cold start on a loaded machine: a hang bound, not a speed bound.
COLD_START_S = 60

# Appended to the copied trigger intake: its responses say they come from the edited handler.
EDIT = """

_served = handler


def handler(event, context):
    response = _served(event, context)
    response.setdefault("headers", {})["x-devstack-reloaded"] = "yes"
    return response
"""


def test_up_reload_serves_an_edited_handler_at_the_next_request(tmp_path: Path) -> None:
    # A copy of the template and its functions, so that the test edits no handler of the repo's;
    # the layer is the repo's own (only read).
    shutil.copy(ROOT / "template.yaml", tmp_path / "template.yaml")
    shutil.copytree(ROOT / "functions", tmp_path / "functions", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "layers").symlink_to(ROOT / "layers")
    with start_devstack(template=tmp_path / "template.yaml", args=["--reload", "--no-schedules"]) as stack:
        url = stack.url("/api/v1/runs/run_0000000000000000000000000")
        before = httpx.get(url, headers=stack.headers, timeout=COLD_START_S)
        assert before.status_code == 404 and "x-devstack-reloaded" not in before.headers

        app = tmp_path / "functions" / "trigger_intake" / "app.py"
        stamp = app.stat().st_mtime_ns + 1_000_000_000  # an edit a second later, whatever the clock
        app.write_text(app.read_text() + EDIT)
        os.utime(app, ns=(stamp, stamp))

        after = httpx.get(url, headers=stack.headers, timeout=COLD_START_S)
        assert after.status_code == 404 and after.headers.get("x-devstack-reloaded") == "yes"
        assert "reload       TriggerIntakeFunction: " in stack.log()
