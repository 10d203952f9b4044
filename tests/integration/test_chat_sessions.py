"""Durable chat sessions on devstack, over HTTP end to end, through the chat demo: the example worker
(a real process running the SDK ``Worker``) is killed with SIGKILL mid-reply; the run reaper sees
its lease lapse and retries the run, and the retried attempt, on a fresh worker, rebuilds the
committed turns plus the cleaned partial and answers each waiting message exactly once. A later
message starts a continuation run that picks up the whole conversation. Nothing touches the run
store but the API."""

from __future__ import annotations

import signal
from typing import Any

import pytest

from devstack.testing.launcher import DevStack
from examples.chat_demo import replies, run_chat_demo
from examples.chat_worker import STORY
from sluice_client import Sluice
from sluice_client.chat import recover

pytestmark = pytest.mark.devstack


def texts(messages: list[Any]) -> list[tuple[str, str]]:
    return [(m.role, "".join(getattr(p, "text", "") for p in m.parts if p.type == "text")) for m in messages]


def test_a_killed_worker_is_retried_by_the_reaper_and_the_session_recovers(
    lifecycle_devstack: DevStack,
) -> None:
    stack = lifecycle_devstack
    lines: list[str] = []
    result = run_chat_demo(stack.info, state_dir=stack.state_dir, say=lines.append, word_delay_s=0.05)

    assert result.killed_returncode == -signal.SIGKILL
    assert result.cut_off and STORY.startswith(result.cut_off) and result.cut_off != STORY
    with Sluice(stack.api_url, stack.api_key) as client:
        conversation = recover(client.sessions.channel(result.session_id)).settled
        out = [r.data for r in client.sessions.records(result.session_id, "out") if isinstance(r.data, dict)]
        killed_run = client.runs.retrieve(result.run_id)
        continuation = client.runs.retrieve(result.continuation_run_id)

    # The killed attempt was ended by the reaper (only it retries a silent worker's run), and a
    # retry finished the run (with 3 s leases a loaded machine can stall the retry's heartbeat past
    # its lease, so the reaper may retry it once more: the replies below are still exactly once);
    # the continuation is a run of its own, started by the last message.
    assert killed_run["status"] == "COMPLETED"
    assert killed_run["attempt"] == result.retried_attempt >= 2
    assert continuation["status"] == "COMPLETED" and continuation["id"] != result.run_id
    assert continuation["payload"]["continuation"] is True
    assert continuation["payload"]["previousRunId"] == result.run_id

    assert texts(conversation) == [
        ("user", "hello"),
        ("assistant", "You said: hello"),
        ("user", "tell me a story"),
        ("assistant", result.cut_off),
        ("user", "and what is a sluice?"),
        ("assistant", STORY[len(result.cut_off) :] + "\n\nYou said: and what is a sluice?"),
        ("user", "are you still there?"),
        ("assistant", "You said: are you still there?"),
        ("user", "one more thing"),
        ("assistant", "You said: one more thing"),
    ]
    assert conversation[3].metadata == {"aborted": True}
    told = [text for text, _ in replies(out)]
    assert len(told) == 5, "hello, the cut-off story (never restarted), one reply per later message"
    for question in ("and what is a sluice?", "are you still there?", "one more thing"):
        assert sum(f"You said: {question}" in text for text in told) == 1, question
    boots = [line for line in result.worker_output if " boots for " in line]
    # Each retry boots as a recovery of the attempt before it (one, unless the reaper retried again).
    retries = [
        f"attempt {n}: the run's retry after attempt {n - 1} was lost)"
        for n in range(2, result.retried_attempt + 1)
    ]
    assert [line.split(" (", 1)[1] for line in boots] == [
        "first run)",
        *retries,
        f"continuation of {result.run_id})",
    ]
