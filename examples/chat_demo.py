"""The chat recovery demo on a running devstack: a worker is killed with SIGKILL in the middle of a
story; the run reaper sees its lease lapse and retries the run, and the retry, on a fresh worker,
finishes the story and answers what was waiting. The demo talks to the API only.

    SLUICE_RUN_LEASE_S=5 python -m devstack up --detach --run-consumer none --schedule-scale 30
    python examples/chat_demo.py

(The short lease and the faster schedules make the reaper notice within seconds; with the defaults,
a 60 s lease and a sweep a minute, step 4 waits a minute or two.)

1. starts ``examples/chat_worker.py`` (the SDK ``Worker``) and opens a session: its first run;
2. says hello, then asks for a story and, while it streams, sends one more message;
3. kills the worker mid-story and sends another message: the run still holds its lease, so it is
   the session's live run and the message waits on ``in``;
4. starts a fresh worker. Once the lease lapses the reaper retries the run; attempt 2 boots as a
   continuation, rebuilds the conversation (the cut-off story kept, marked aborted), tells the rest
   of the story and answers the two waiting messages, once each;
5. the session goes quiet and the run completes; one more message starts a continuation run, which
   rebuilds the conversation from the snapshot and answers it.

``run_chat_demo(info, state_dir=...)`` is the same from Python; the integration test drives it.
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sluice_client import Sluice
from sluice_client.sessions import user_message

ROOT = Path(__file__).resolve().parent.parent
WORKER = ROOT / "examples" / "chat_worker.py"
# A bound on every wait, so that a broken worker fails the demo instead of hanging it. It covers
# the reaper on a default stack: a 60 s lease, a sweep a minute, and the retry's backoff.
WAIT_S = 300
T = TypeVar("T")


@dataclass
class DemoResult:
    session_id: str
    run_id: str  # the session's first run: killed on attempt 1, finished by attempt 2
    retried_attempt: int
    continuation_run_id: str
    cut_off: str
    killed_returncode: int | None
    worker_output: list[str] = field(default_factory=list)


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


def wait_for(what: str, check: Callable[[], T | None], worker: subprocess.Popen[str] | None = None) -> T:
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
    say: Callable[[str], None] = print,
    word_delay_s: float = 0.08,
    kill_after_words: int = 12,
    idle_s: float = 2.0,
) -> DemoResult:
    word_delay = ["--word-delay", str(word_delay_s)]
    with Sluice(info["apiUrl"], info["apiKey"]) as client:

        def finished_replies(count: int) -> list[tuple[str, bool]] | None:
            """The replies once the ``count``-th has finished (replies stream one after another)."""
            told = replies(out_chunks(client, session.id))
            return told if len(told) >= count and told[count - 1][1] else None

        def first_run_where(check: Callable[[dict[str, Any]], bool]) -> Callable[[], dict[str, Any] | None]:
            def probe() -> dict[str, Any] | None:
                run = client.runs.retrieve(run_id)
                return run if check(run) else None

            return probe

        doomed = start_worker(state_dir, *word_delay, "--idle-s", str(WAIT_S))
        session = client.sessions.create("chat", "chat-agent", external_id=f"demo-{uuid.uuid4().hex[:8]}")
        run_id = session.currentRunId or ""
        say(f"[demo] session {session.id}, first run {run_id}")

        client.sessions.send(session.id, user_message("hello"))
        say(f"[demo] agent: {wait_for('the first answer', lambda: finished_replies(1), doomed)[0][0]}")

        client.sessions.send(session.id, user_message("tell me a story"))
        client.sessions.send(session.id, user_message("and what is a sluice?"))

        def story_underway() -> bool:
            told = replies(out_chunks(client, session.id))
            return len(told) == 2 and not told[1][1] and len(told[1][0].split()) >= kill_after_words

        wait_for("the story to be under way", story_underway, doomed)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(WAIT_S)
        cut_off = replies(out_chunks(client, session.id))[1][0]
        say(f"[demo] worker killed mid-story after: {cut_off!r}")
        output = (doomed.stdout.read() if doomed.stdout else "").splitlines()

        client.sessions.send(session.id, user_message("are you still there?"))
        waiting_for = client.sessions.get(session.id).currentRunId
        say(f"[demo] the message waits for {waiting_for}, the killed worker's run, whose lease is lapsing")
        fresh = start_worker(state_dir, *word_delay, "--idle-s", str(idle_s))
        try:
            retried = wait_for("the run's retry", first_run_where(lambda r: r["attempt"] > 1), fresh)
            say(f"[demo] the reaper saw the lease lapse and retried {run_id}: attempt {retried['attempt']}")
            for text, _ in wait_for("the recovered answers", lambda: finished_replies(4), fresh)[2:]:
                say(f"[demo] agent: {text}")

            completed = wait_for(
                "the run to complete", first_run_where(lambda r: r["status"] == "COMPLETED"), fresh
            )
            client.sessions.send(session.id, user_message("one more thing"))
            continuation = client.sessions.get(session.id).currentRunId or ""
            say(f"[demo] {run_id} completed; the next message started continuation run {continuation}")
            say(f"[demo] agent: {wait_for('the last answer', lambda: finished_replies(5), fresh)[4][0]}")
        finally:
            fresh.send_signal(signal.SIGTERM)
            finished, _ = fresh.communicate(timeout=WAIT_S)
        output += finished.splitlines()
        for line in finished.splitlines():
            if line.startswith("[worker]"):
                say(line)
        client.sessions.close(session.id)
        return DemoResult(
            session.id, run_id, completed["attempt"], continuation, cut_off, doomed.returncode, output
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--state-dir", type=Path, default=Path(".devstack"))
    args = parser.parse_args(argv)
    info = json.loads((args.state_dir / "stack.json").read_text())
    run_chat_demo(info, state_dir=args.state_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
