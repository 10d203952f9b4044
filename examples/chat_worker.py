"""A chat worker for devstack: the SDK's ``Worker`` (``sluice_client.worker``) with one task handler,
which serves a session's run with a ``ChatAgent`` on the HTTP session channel and answers from a
scripted model.

    python -m devstack up --detach --run-consumer none
    python examples/chat_worker.py                 # the stack of .devstack, its dev API key

The worker takes each run of its task (``--task``, default ``chat-agent``) off RunQueue under a
lease, which it heartbeats while the handler runs. The handler boots the agent (a continuation run,
and any retried attempt, first rebuilds the conversation), answers what waits on ``in``, then reads
``in`` until the session has been quiet for ``--idle-s`` and returns: the run completes, and the
session's next message starts a continuation run. A worker that is killed holds on to nothing: its
lease lapses, the run reaper retries the run, and the next attempt picks the session up where the
killed one stopped. SIGTERM or Ctrl-C stops the worker after the runs in hand.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
from pydantic import JsonValue, ValidationError

from sluice_client import Sluice
from sluice_client.chat import ChatAgent, ChatMessage, Recovery, RecoveryPlan, SessionRunPayload
from sluice_client.errors import ConflictError
from sluice_client.worker import Handler, NonRetryableError, TaskRun, Worker

Say = Callable[[str], None]

STORY = (
    "Once upon a time a small river kept a ledger of every raindrop that fell into it. "
    "When the great storm came, the river could not count fast enough, so it built a sluice: "
    "a gate that let the water wait in a quiet pond and pass through a few drops at a time. "
    "Nothing was lost, the valley stayed dry, and the river finished its ledger before sunrise."
)
SCRIPT = {"story": STORY}
IDLE_POLL_S = 0.2


def scripted_answer(question: str) -> str:
    """The scripted model: canned answers by keyword, else an echo."""
    for keyword, answer in SCRIPT.items():
        if keyword in question.lower():
            return answer
    return f"You said: {question}"


def text_of(message: ChatMessage) -> str:
    return "".join(getattr(part, "text", "") for part in message.parts if part.type == "text")


def is_aborted(message: ChatMessage) -> bool:
    return isinstance(message.metadata, dict) and message.metadata.get("aborted") is True


def words(text: str) -> list[str]:
    """The deltas a model would stream; joined again they are ``text`` exactly."""
    return re.findall(r"\s*\S+\s*", text)


class ScriptedAgent(ChatAgent):
    def __init__(self, *args: Any, word_delay_s: float = 0.05, say: Say = print, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.word_delay_s = word_delay_s
        self.say = say

    def on_boot(self, *, continuation: bool, previous_run_id: str | None) -> None:
        if self.attempt > 1:
            kind = f"attempt {self.attempt}: the run's retry after attempt {self.attempt - 1} was lost"
        elif continuation:
            kind = f"continuation of {previous_run_id}"
        else:
            kind = "first run"
        self.say(f"[worker] {self.run_id} boots for {self.session_id} ({kind})")

    def on_recovery_boot(self, recovery: Recovery) -> RecoveryPlan | None:
        partial = text_of(recovery.partial) if recovery.partial else ""
        self.say(
            f"[worker] recovered {len(recovery.settled)} settled messages, a cut-off reply of "
            f"{len(partial)} characters and {len(recovery.in_flight)} unanswered user messages"
        )
        return None  # the default chain: the cut-off reply stays, marked aborted

    def on_turn_complete(self, *, messages: list[ChatMessage], response: ChatMessage) -> None:
        self.say(f"[worker] turn {len(messages) // 2} complete: {text_of(response)[:48]!r}...")

    def run(self, messages: list[ChatMessage]) -> Iterator[JsonValue]:
        text = self.unfinished(messages) + scripted_answer(text_of(messages[-1]))
        yield {"type": "text-start", "id": "t1"}
        for word in words(text):
            time.sleep(self.word_delay_s)
            yield {"type": "text-delta", "id": "t1", "delta": word}
        yield {"type": "text-end", "id": "t1"}

    def unfinished(self, messages: list[ChatMessage]) -> str:
        """When the reply before this question was cut off, the rest of it, told first: a scripted
        model knows what it was going to say (a real one would be asked to continue)."""
        if len(messages) < 3 or not is_aborted(cut := messages[-2]):
            return ""
        full, told = scripted_answer(text_of(messages[-3])), text_of(cut)
        return f"{full[len(told) :]}\n\n" if full.startswith(told) and full != told else ""


def chat_task(
    client: Sluice, stop: threading.Event, *, word_delay_s: float, idle_s: float, say: Say
) -> Handler:
    """The task handler: serve one attempt of a session run until the session is quiet for
    ``idle_s`` (or the worker stops); what it returns is the run's output."""

    def handle(task: TaskRun) -> dict[str, Any]:
        try:
            payload = SessionRunPayload.model_validate(task.payload)
        except ValidationError as exc:
            raise NonRetryableError(f"run {task.id} is not a session run: {exc}") from exc
        agent = ScriptedAgent(
            client.sessions.channel(payload.sessionId),
            payload,
            run_id=task.id,
            attempt=task.attempt,
            word_delay_s=word_delay_s,
            say=say,
        )
        try:
            agent.serve()
            quiet_since = time.monotonic()
            while time.monotonic() - quiet_since < idle_s and not stop.wait(IDLE_POLL_S):
                if agent.answer_new():
                    quiet_since = time.monotonic()
        except ConflictError as exc:
            if exc.code != "session_closed":
                raise  # the attempt fails, and the lifecycle retries it
            say(f"[worker] {task.id}: {payload.sessionId} was closed")
            return {"sessionId": payload.sessionId, "closed": True}
        why = "the worker is stopping" if stop.is_set() else f"the session was quiet for {idle_s:g}s"
        say(f"[worker] {task.id} attempt {task.attempt} done: {why}")
        return {"sessionId": payload.sessionId, "messages": len(agent.messages)}

    return handle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--state-dir", type=Path, default=Path(".devstack"))
    parser.add_argument("--api-key", help="a key of the sessions' environment (default: the stack's dev key)")
    parser.add_argument("--task", default="chat-agent")
    parser.add_argument("--concurrency", type=int, default=4, help="sessions served at once")
    parser.add_argument("--word-delay", type=float, default=0.05, help="seconds per streamed word")
    parser.add_argument("--idle-s", type=float, default=30.0, help="complete a run once quiet this long")
    args = parser.parse_args(argv)
    info = json.loads((args.state_dir / "stack.json").read_text())
    sqs = boto3.client(
        "sqs",
        endpoint_url=info["awsEndpointUrl"],
        region_name=info["region"],
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    def say(line: str) -> None:
        print(line, flush=True)

    with Sluice(info["apiUrl"], args.api_key or info["apiKey"], stream_url=info.get("streamUrl")) as client:
        handler = chat_task(client, stop, word_delay_s=args.word_delay, idle_s=args.idle_s, say=say)
        worker = Worker(
            client,
            info["queueUrls"]["RunQueue"],
            {args.task: handler},
            sqs=sqs,
            concurrency=args.concurrency,
            wait_s=1,  # short long-polls, so that a stop is prompt
        )
        say(f"[worker] {os.getpid()} serving {args.task}")
        worker.run(stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
