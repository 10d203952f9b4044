"""The `sluice` command line against the session's devstack: the installed console script finds
the stack through .devstack/stack.json, and each command's answer is the API's."""

from __future__ import annotations

import json
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from devstack.testing.launcher import DevStack
from sluice_client import Sluice
from sluice_client.cli import app
from sluice_client.cli.session import Exit

pytestmark = pytest.mark.devstack


def sluice(stack: DevStack, *args: str, key: str | None = None) -> Any:
    env = {"SLUICE_API_URL": stack.api_url, "SLUICE_API_KEY": key or stack.api_key}
    return CliRunner().invoke(app, list(args), env=env)


SCRIPT = Path(sys.executable).parent / "sluice"  # installed by `pip install -e .`


def with_stack_file(stack: DevStack, directory: Path) -> Path:
    """``directory`` holding a copy of the stack's .devstack/stack.json, as after `devstack up` there."""
    (directory / ".devstack").mkdir()
    shutil.copy(stack.state_dir / "stack.json", directory / ".devstack" / "stack.json")
    return directory


def test_the_console_script_triggers_and_reads_a_run_of_the_running_stack(
    devstack: DevStack, tmp_path: Path
) -> None:
    with_stack_file(devstack, tmp_path)
    script = SCRIPT
    env = {"PATH": str(script.parent)}  # and no SLUICE_API_*: the stack file is what it finds

    def run(*args: str) -> Any:
        done = subprocess.run(
            [script, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    run_id = run("trigger", "cli", "--payload", '{"n": 1}', "--idempotency-key", "cli-once")["id"]
    assert run("trigger", "cli", "--payload", '{"n": 1}', "--idempotency-key", "cli-once") == {
        "id": run_id,
        "isCached": True,
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


# --- sluice stream tail ----------------------------------------------------------------------------


class Tail:
    """`sluice stream tail` as a process, its stdout lines collected as they are printed."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: queue.Queue[str] = queue.Queue()
        # stderr is read too: a full pipe would stop the process, and a hang shows what it said.
        self.errors: list[str] = []
        threading.Thread(target=self._collect, daemon=True).start()
        threading.Thread(target=self._collect_errors, daemon=True).start()

    def _collect(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def _collect_errors(self) -> None:
        assert self.process.stderr is not None
        self.errors.extend(self.process.stderr)

    def next_lines(self, count: int, timeout: float = 30) -> list[Any]:
        return [json.loads(self.lines.get(timeout=timeout)) for _ in range(count)]

    def exit_code(self, timeout: float = 30) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            said = "".join(self.errors)
            raise AssertionError(f"still running after {timeout:.0f}s; stderr: {said}") from None


@pytest.fixture
def tail(devstack: DevStack, tmp_path: Path) -> Iterator[Any]:
    """Starts `sluice stream tail ARGS...` in a directory with the stack's stack.json."""
    started: list[subprocess.Popen[str]] = []
    with_stack_file(devstack, tmp_path)

    def start(*args: str) -> Tail:
        process = subprocess.Popen(
            [SCRIPT, *args],
            cwd=tmp_path,
            env={"PATH": str(SCRIPT.parent)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        return Tail(process)

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(10)


@pytest.mark.parametrize(("transport", "ending"), [("streamed", "close"), ("long poll", "run completes")])
def test_stream_tail_prints_a_run_stream_as_it_is_written_until_it_ends(
    devstack: DevStack, tail: Any, transport: str, ending: str
) -> None:
    via = [] if transport == "streamed" else ["--api-url", devstack.api_url]  # flags: no streamUrl
    with Sluice(devstack.api_url, devstack.api_key) as client:
        run_id = client.trigger("cli-stream").id
        writer = client.streams.writer(run_id, "ai")
        writer.append({"delta": "Hel"})
        following = tail(*via, "stream", "tail", run_id, "ai")
        assert following.next_lines(1) == [{"delta": "Hel"}]
        writer.append_many(["lo", "!"])
        assert following.next_lines(2) == ["lo", "!"]
        if ending == "close":
            writer.close()
        else:
            lease = client.runs.start(run_id)
            client.runs.complete(run_id, lease["leaseToken"], output="done")
        assert following.exit_code() == 0
        ids = [m.id for m in client.streams.records(run_id, "ai")]
    resumed = tail("stream", "tail", run_id, "ai", "--json", "--last-event-id", ids[0])
    assert resumed.next_lines(2) == [{"id": ids[1], "data": "lo"}, {"id": ids[2], "data": "!"}]
    assert resumed.exit_code() == 0


def test_stream_tail_no_follow_prints_what_is_there_and_exits(devstack: DevStack) -> None:
    with Sluice(devstack.api_url, devstack.api_key) as client:
        run_id = client.trigger("cli-stream").id
        client.streams.writer(run_id, "log").append_many([{"line": i} for i in range(3)])
    done = sluice(devstack, "stream", "tail", run_id, "log", "--no-follow")
    assert done.exit_code == 0, done.output
    assert [json.loads(line) for line in done.stdout.splitlines()] == [{"line": i} for i in range(3)]
    nothing_yet = sluice(devstack, "stream", "tail", run_id, "not-written", "--no-follow")
    assert nothing_yet.exit_code == 0 and nothing_yet.stdout == ""


def test_stream_tail_stops_on_ctrl_c(devstack: DevStack, tail: Any) -> None:
    with Sluice(devstack.api_url, devstack.api_key) as client:
        run_id = client.trigger("cli-stream").id
        client.streams.writer(run_id, "ai").append("first")
    following = tail("stream", "tail", run_id, "ai")
    assert following.next_lines(1) == ["first"]
    following.process.send_signal(signal.SIGINT)
    assert following.exit_code() == Exit.INTERRUPTED


@pytest.mark.parametrize("transport", ["streamed", "long poll"])
def test_stream_tail_of_an_unknown_run_or_with_a_bad_key_exits_rejected(
    devstack: DevStack, transport: str
) -> None:
    via = ["--stream-url", str(devstack.info["streamUrl"])] if transport == "streamed" else []
    done = sluice(devstack, *via, "stream", "tail", "run_nope", "ai")
    assert done.exit_code == Exit.REJECTED and "404 not_found" in done.stderr and "run_nope" in done.stderr
    done = sluice(devstack, *via, "stream", "tail", "run_nope", "ai", key="sk_dev_not_a_key")
    assert done.exit_code == Exit.REJECTED and "401" in done.stderr and "--api-key" in done.stderr
