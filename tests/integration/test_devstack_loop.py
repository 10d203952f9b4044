"""The everyday loop on devstack: a busy port reported before anything starts, handlers
reloaded while the stack runs."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from devstack.testing.launcher import run_cli

pytestmark = pytest.mark.devstack


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
