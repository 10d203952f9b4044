"""The chat recovery demo on a running devstack: a worker is killed with SIGKILL in the middle of a
story, and the continuation run finishes the story and answers what was waiting.

    python -m devstack up --detach --run-consumer none
    python examples/chat_demo.py

1. starts ``examples/chat_worker.py`` and opens a session;
2. says hello, then asks for a story and (while it streams) sends one more message;
3. kills the worker mid-story; the run is marked CRASHED, standing in for the run lifecycle's
   reaper (not in this example yet), so that the session has no live run;
4. sends another message: that append to ``in`` starts the continuation run, which a fresh worker
   picks up: it rebuilds the conversation (the cut-off story kept, marked aborted), tells the rest
   of the story, and answers the waiting messages once each.

``run_chat_demo(info)`` is the same from Python; the integration test drives it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sluice import aws
from sluice.client import Sluice
from sluice.client.sessions import user_message
from sluice.config import get_settings, reload_settings

ROOT = Path(__file__).resolve().parent.parent
WORKER = ROOT / "examples" / "chat_worker.py"
WAIT_S = 120  # a bound on every wait, so that a broken worker fails the demo instead of hanging it


@dataclass
class DemoResult:
    session_id: str
    first_run_id: str
    continuation_run_id: str
    cut_off: str
    killed_returncode: int | None
    worker_output: list[str] = field(default_factory=list)


def use_stack(info: dict[str, Any]) -> None:
    """Point this process's ``sluice`` (the engine's run store) at the stack."""
    os.environ.update(
        AWS_ENDPOINT_URL=info["awsEndpointUrl"],
        AWS_DEFAULT_REGION=info["region"],
        SLUICE_RUNS_TABLE=info["tables"]["RunsTable"],
    )
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ[name] = os.environ.get(name) or "testing"  # moto takes any credentials
    reload_settings()
    aws.reset_clients()


def mark_run_crashed(run_id: str) -> None:
    """Stands in for the run reaper, which notices a dead worker only through a lease this example's
    worker does not take: the run item's top-level status is the one that counts."""
    aws.dynamodb().update_item(
        TableName=get_settings().runs_table,
        Key={"runId": {"S": run_id}},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "CRASHED"}},
    )


def start_worker(state_dir: Path, *args: str) -> subprocess.Popen[str]:
    command = [sys.executable, str(WORKER), "--state-dir", str(state_dir), *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )


def out_chunks(client: Sluice, session_id: str) -> list[dict[str, Any]]:
    return [r.data for r in client.sessions.records(session_id, "out") if isinstance(r.data, dict)]


def replies(chunks: list[dict[str, Any]]) -> list[tuple[str, bool]]:
    """(text, finished) of every reply on ``out``, in order."""
    found: list[tuple[str, bool]] = []
    for chunk in chunks:
        kind = chunk.get("type")
        if kind == "start":
            found.append(("", False))
        elif kind == "text-delta" and found:
            found[-1] = (found[-1][0] + str(chunk.get("delta", "")), False)
        elif kind == "finish" and found:
            found[-1] = (found[-1][0], True)
    return found


def wait_for(what: str, check: Any, worker: subprocess.Popen[str] | None = None) -> Any:
    deadline = time.monotonic() + WAIT_S
    while not (value := check()):
        if worker is not None and worker.poll() is not None:
            raise RuntimeError(f"the worker exited while waiting for {what}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        time.sleep(0.05)
    return value


def run_chat_demo(
    info: dict[str, Any],
    *,
    state_dir: Path,
    say: Any = print,
    word_delay_s: float = 0.08,
    kill_after_words: int = 12,
) -> DemoResult:
    use_stack(info)
    worker_args = ["--word-delay", str(word_delay_s)]
    with Sluice(info["apiUrl"], info["apiKey"]) as client:
        worker = start_worker(state_dir, *worker_args, "--idle-s", str(WAIT_S))
        session = client.sessions.create("chat", "chat-agent", external_id=f"demo-{uuid.uuid4().hex[:8]}")
        say(f"[demo] session {session.id}, first run {session.currentRunId}")

        client.sessions.send(session.id, user_message("hello"))
        wait_for(
            "the first answer", lambda: [r for r in replies(out_chunks(client, session.id)) if r[1]], worker
        )
        say(f"[demo] agent: {replies(out_chunks(client, session.id))[0][0]}")

        client.sessions.send(session.id, user_message("tell me a story"))
        client.sessions.send(session.id, user_message("and what is a sluice?"))

        def story_underway() -> bool:
            told = replies(out_chunks(client, session.id))
            return len(told) == 2 and not told[1][1] and len(told[1][0].split()) >= kill_after_words

        wait_for("the story to be under way", story_underway, worker)
        worker.send_signal(signal.SIGKILL)
        worker.wait(WAIT_S)
        cut_off = replies(out_chunks(client, session.id))[1][0]
        say(f"[demo] worker killed mid-story after: {cut_off!r}")
        output = (worker.stdout.read() if worker.stdout else "").splitlines()

        first_run = session.currentRunId or ""
        mark_run_crashed(first_run)
        client.sessions.send(session.id, user_message("are you still there?"))
        continuation = client.sessions.get(session.id).currentRunId or ""
        say(f"[demo] the message started continuation run {continuation}")

        resumed = start_worker(state_dir, *worker_args, "--idle-s", "1", "--once")
        finished, _ = resumed.communicate(timeout=WAIT_S)
        output += finished.splitlines()
        for line in finished.splitlines():
            say(line)
        for text, _done in replies(out_chunks(client, session.id))[2:]:
            say(f"[demo] agent: {text}")
        client.sessions.close(session.id)
        return DemoResult(session.id, first_run, continuation, cut_off, worker.returncode, output)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--state-dir", type=Path, default=Path(".devstack"))
    args = parser.parse_args(argv)
    info = json.loads((args.state_dir / "stack.json").read_text())
    run_chat_demo(info, state_dir=args.state_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
