"""Continuation boot: how long rebuilding a conversation takes as it grows, with the snapshot that
each turn writes and without one (every turn replayed from ``out`` and ``in``). Prints figures and
the ratio; never passes or fails on speed.

    .venv/bin/python bench/sessions_recovery.py

In-memory session, the real agent writing the channels (``ChatAgent.serve``), then ``recover``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path[:0] = [
    str(Path(__file__).resolve().parent.parent),
    str(Path(__file__).resolve().parent.parent / "layers/sluice"),
    str(Path(__file__).resolve().parent.parent / "clients/python"),
]

from pydantic import JsonValue  # noqa: E402

from sluice_client.chat import (  # noqa: E402
    ChatAgent,
    ChatMessage,
    InMemorySessionChannel,
    SessionRunPayload,
    recover,
)

WORDS_PER_REPLY = 50
REPEATS = 5


class Chatty(ChatAgent):
    def run(self, messages: list[ChatMessage]) -> Iterator[JsonValue]:
        yield {"type": "text-start", "id": "t"}
        for n in range(WORDS_PER_REPLY):
            yield {"type": "text-delta", "id": "t", "delta": f"word{n} "}
        yield {"type": "text-end", "id": "t"}


def session_with(turns: int) -> InMemorySessionChannel:
    channel = InMemorySessionChannel()
    for n in range(turns):
        channel.send(ChatMessage.model_validate({"id": f"u{n}", "role": "user", "parts": [{"type": "text"}]}))
    Chatty(channel, SessionRunPayload(sessionId="bench"), run_id="run_1").serve()
    return channel


def best_of(channel: InMemorySessionChannel) -> float:
    timings = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        recovery = recover(channel)
        timings.append(time.perf_counter() - started)
    assert recovery.in_flight == [] and recovery.partial is None
    return min(timings)


def main() -> None:
    print(f"{'turns':>6} {'out records':>12} {'snapshot ms':>12} {'replay-only ms':>15} {'ratio':>6}")
    for turns in (10, 100, 500):
        channel = session_with(turns)
        with_snapshot = best_of(channel)
        channel.snapshot = None
        replay_only = best_of(channel)
        print(
            f"{turns:>6} {len(channel.records('out')):>12} {with_snapshot * 1000:>12.2f} "
            f"{replay_only * 1000:>15.2f} {replay_only / with_snapshot:>6.1f}"
        )


if __name__ == "__main__":
    main()
