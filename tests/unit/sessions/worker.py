"""A chat worker process for the killed-worker test: ``python -m tests.unit.sessions.worker URL SESSION
[--continuation]``. It answers every user message with a slow, scripted reply."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator

import redis
from pydantic import JsonValue

from sluice_client.chat import ChatAgent, ChatMessage, SessionRunPayload
from tests.unit.sessions.builders import text_chunks, texts, user
from tests.unit.sessions.redis_channel import RedisSessionChannel

# Long enough that the test kills the worker mid-reply, short enough for the first reply to finish.
SLOW_WORD_S = 0.05
SLOW_WORDS_FROM = "slow"


class SlowAgent(ChatAgent):
    def run(self, messages: list[ChatMessage]) -> Iterator[JsonValue]:
        question = texts(messages)[-1][1]
        words = " ".join([question] * 2000) if question.startswith(SLOW_WORDS_FROM) else question
        for chunk in text_chunks(f"re: {words}"):
            if question.startswith(SLOW_WORDS_FROM):
                time.sleep(SLOW_WORD_S)
            yield chunk


def main(url: str, session_id: str, continuation: bool) -> None:
    channel = RedisSessionChannel(redis.Redis.from_url(url, decode_responses=True), session_id)
    if continuation:
        payload = SessionRunPayload(sessionId=session_id, continuation=True, previousRunId="run_1")
    else:
        payload = SessionRunPayload(sessionId=session_id, message=user("u1", "one"))
    SlowAgent(channel, payload, run_id="run_2" if continuation else "run_1").serve()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], "--continuation" in sys.argv[3:])
