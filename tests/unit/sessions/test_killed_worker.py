"""A real worker process, killed with SIGKILL in the middle of a reply, and the continuation run that
picks the session up: it rebuilds exactly the committed turns plus the cut-off reply, and answers
the user message that was still waiting exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

from sluice_client.chat import recover
from tests.unit.sessions.builders import texts, user
from tests.unit.sessions.redis_channel import RedisSessionChannel

ROOT = Path(__file__).resolve().parents[3]
# A bound on waiting for the worker, so that a broken worker fails the test instead of hanging it.
WORKER_WAIT_S = 60


def start_worker(redis_url: str, session_id: str, *extra: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "tests.unit.sessions.worker", redis_url, session_id, *extra]
    return subprocess.Popen(command, cwd=ROOT)


def cut_off_text(channel: RedisSessionChannel) -> str | None:
    """The text streamed since the last ``start`` on ``out``; None when that reply has finished."""
    chunks = [record.data for record in channel.read("out", None) if isinstance(record.data, dict)]
    starts = [i for i, chunk in enumerate(chunks) if chunk.get("type") == "start"]
    tail = chunks[starts[-1] :] if starts else []
    if not tail or any(chunk.get("type") == "finish" for chunk in tail):
        return None
    return "".join(str(chunk.get("delta", "")) for chunk in tail if chunk.get("type") == "text-delta")


def test_a_worker_killed_mid_reply_is_recovered_by_the_continuation(
    redis_client: redis.Redis, redis_url: str
) -> None:
    channel = RedisSessionChannel(redis_client, "session_killed")
    channel.send(user("u2", "slow two"))
    channel.send(user("u3", "three"))

    worker = start_worker(redis_url, "session_killed")
    deadline = time.monotonic() + WORKER_WAIT_S
    try:
        while len(cut_off_text(channel) or "") < len("re: slow two slow two"):
            assert time.monotonic() < deadline and worker.poll() is None, "the worker never got mid-reply"
            time.sleep(0.02)
        os.kill(worker.pid, signal.SIGKILL)
    finally:
        worker.wait(WORKER_WAIT_S)
    assert worker.returncode == -signal.SIGKILL
    cut_off = cut_off_text(channel)
    assert cut_off is not None and cut_off.startswith("re: slow two slow two")

    continuation = start_worker(redis_url, "session_killed", "--continuation")
    assert continuation.wait(WORKER_WAIT_S) == 0

    conversation = recover(channel).settled
    assert texts(conversation) == [
        ("user", "one"),
        ("assistant", "re: one"),
        ("user", "slow two"),
        ("assistant", cut_off),
        ("user", "three"),
        ("assistant", "re: three"),
    ]
    assert conversation[3].metadata == {"aborted": True}
    out = [record.data for record in channel.read("out", None)]
    assert out.count({"type": "text-delta", "id": "t1", "delta": "three"}) == 1, "u3 answered exactly once"
    starts = [chunk for chunk in out if isinstance(chunk, dict) and chunk.get("type") == "start"]
    assert len(starts) == 3, "one, the cut-off reply (never restarted), three"
