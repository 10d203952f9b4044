"""Starting and stopping: signals stop everything devstack started, and a failed start leaves
nothing behind either."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from devstack.services import REDIS_MISSING
from devstack.testing.launcher import ROOT, start_devstack
from devstack.testing.processes import assert_gone, cmdline, descendants, function_workers

pytestmark = pytest.mark.devstack


def test_sigterm_stops_every_child(tmp_path: Path) -> None:
    # Warm: a worker per function is running when the signal comes.
    with start_devstack(args=["--warm"], state_dir=tmp_path) as stack:
        children = descendants(stack.process.pid)
        commands = " ".join(cmdline(pid) for pid in children)
        assert "redis-server" in commands and "devstack.moto_server" in commands
        assert "multiprocessing" in commands
    # start_devstack sent SIGTERM and asserted that none of them is left; the state is cleared.
    assert not (tmp_path / "stack.json").exists() and not (tmp_path / "devstack.pid").exists()


def test_sigint_stops_every_child_with_workers_started_on_first_use(tmp_path: Path) -> None:
    # --no-warm, the launcher's default: a function's first worker starts with its first
    # invocation (S3's test event at start has already started the staged ingest's).
    with start_devstack(state_dir=tmp_path) as stack:
        before = function_workers(stack.process.pid)
        assert len(before) < len(stack.info["functions"])
        missing = httpx.get(stack.url("/api/v1/runs/run_missing"), headers=stack.headers, timeout=60)
        assert missing.status_code == 404, missing.text
        assert function_workers(stack.process.pid) - before, "the request started a worker"
        children = descendants(stack.process.pid)
        stack.process.send_signal(signal.SIGINT)
        stack.process.wait(30)
        assert stack.process.returncode == 0
    assert_gone(children)


def _run_up(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICE_") and k != "REDIS_URL"}
    child_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "devstack", "up", "--port", "0", *args],
        cwd=ROOT,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_missing_redis_server_says_how_to_get_one(tmp_path: Path) -> None:
    done = _run_up("--state-dir", str(tmp_path), env={"PATH": str(tmp_path)})
    assert done.returncode != 0
    assert REDIS_MISSING in done.stderr
    assert not (tmp_path / "stack.json").exists()


def test_failed_start_cleans_up(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _run_up("--state-dir", str(tmp_path), "--aws-port", str(port))
    assert done.returncode == 2 and f"port {port} is taken" in done.stderr
    assert "redis-server" in done.stderr and "stopped" in done.stderr  # started, then stopped again
    assert not (tmp_path / "stack.json").exists() and not (tmp_path / "devstack.pid").exists()
