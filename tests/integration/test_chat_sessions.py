"""Durable chat sessions on devstack, over HTTP end to end: the example worker (a real process)
is killed with SIGKILL mid-reply, and the continuation run that the next message starts rebuilds
the committed turns plus the cleaned partial and answers each waiting message exactly once."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

import pytest

from devstack.testing.launcher import DevStack
from examples.chat_demo import replies, run_chat_demo
from examples.chat_worker import STORY
from sluice.client import Sluice
from sluice.config import reload_settings
from sluice.sessions import recover


def texts(messages: list[Any]) -> list[tuple[str, str]]:
    return [(m.role, "".join(getattr(p, "text", "") for p in m.parts if p.type == "text")) for m in messages]


def test_a_killed_worker_is_recovered_by_the_continuation_over_http(
    devstack_factory: Callable[..., DevStack], monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = devstack_factory()
    for name in (
        "AWS_ENDPOINT_URL",
        "AWS_DEFAULT_REGION",
        "SLUICE_RUNS_TABLE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    ):
        monkeypatch.setenv(name, "")  # restored after the test: the demo points this process at the stack
    lines: list[str] = []
    result = run_chat_demo(stack.info, state_dir=stack.state_dir, say=lines.append, word_delay_s=0.05)
    reload_settings()

    assert result.killed_returncode == -signal.SIGKILL
    assert result.continuation_run_id not in ("", result.first_run_id)
    assert result.cut_off and STORY.startswith(result.cut_off) and result.cut_off != STORY

    with Sluice(stack.api_url, stack.api_key) as client:
        conversation = recover(client.sessions.channel(result.session_id)).settled
        out = [r.data for r in client.sessions.records(result.session_id, "out") if isinstance(r.data, dict)]
    assert texts(conversation) == [
        ("user", "hello"),
        ("assistant", "You said: hello"),
        ("user", "tell me a story"),
        ("assistant", result.cut_off),
        ("user", "and what is a sluice?"),
        ("assistant", STORY[len(result.cut_off) :] + "\n\nYou said: and what is a sluice?"),
        ("user", "are you still there?"),
        ("assistant", "You said: are you still there?"),
    ]
    assert conversation[3].metadata == {"aborted": True}
    told = [text for text, _ in replies(out)]
    assert len(told) == 4, "hello, the cut-off story (never restarted), and one reply per waiting message"
    assert sum("You said: and what is a sluice?" in text for text in told) == 1
    assert any(
        "boots for" in line and "continuation of " + result.first_run_id in line
        for line in result.worker_output
    )
