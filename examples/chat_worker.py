"""A chat worker for devstack: it consumes RunQueue and answers each session run's turns with a
scripted model, through ``ChatAgent`` on the HTTP session channel.

    python -m devstack up --detach --run-consumer none
    python examples/chat_worker.py                 # the stack of .devstack, its dev API key

Each RunQueue message of the task (``--task``, default ``chat-agent``) in the key's environment is
taken (deleted: a session whose worker dies is picked up by its continuation run, not by a
redelivery), the run read, and its session served: ``serve()`` boots (rebuilding the conversation
on a continuation) and answers what waits on ``in``, then the worker polls ``in`` for new messages
until it has been idle for ``--idle-s``. Messages of other tasks or environments go back on the
queue at once.

The run lifecycle (start / heartbeat / complete, and the reaper that marks a vanished worker's run
CRASHED) is not part of this example yet: an idle worker leaves its run as it found it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
from pydantic import JsonValue

from sluice.client import Sluice
from sluice.sessions import ChatAgent, ChatMessage, Recovery, RecoveryPlan, SessionRunPayload
from sluice.streams.runs import is_final

Say = Callable[[str], None]

STORY = (
    "Once upon a time a small river kept a ledger of every raindrop that fell into it. "
    "When the great storm came, the river could not count fast enough, so it built a sluice: "
    "a gate that let the water wait in a quiet pond and pass through a few drops at a time. "
    "Nothing was lost, the valley stayed dry, and the river finished its ledger before sunrise."
)
SCRIPT = {"story": STORY}


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
        kind = f"continuation of {previous_run_id}" if continuation else "first run"
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


def serve_run(client: Sluice, run_id: str, *, word_delay_s: float, idle_s: float, say: Say) -> bool:
    """Serve one run's session until it has been idle for ``idle_s``; False when it is not a live
    session run."""
    run = client.runs.retrieve(run_id)
    payload = run.get("payload")
    if is_final(str(run.get("status"))) or not isinstance(payload, dict) or "sessionId" not in payload:
        say(f"[worker] {run_id} is not a live session run; skipped")
        return False
    session = SessionRunPayload.model_validate(payload)
    channel = client.sessions.channel(session.sessionId)
    agent = ScriptedAgent(channel, session, run_id=run_id, word_delay_s=word_delay_s, say=say)
    agent.serve()
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < idle_s:
        if agent.answer_new():
            idle_since = time.monotonic()
        else:
            time.sleep(0.2)
    say(f"[worker] {run_id} idle for {idle_s:g}s; done")
    return True


def consume(
    client: Sluice,
    sqs: Any,
    queue_url: str,
    *,
    task: str,
    env_id: str,
    once: bool,
    word_delay_s: float,
    idle_s: float,
    say: Say,
) -> None:
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=1)
        for message in messages.get("Messages", []):
            body = json.loads(message["Body"])
            if body.get("taskId") != task or body.get("envId") != env_id:
                sqs.change_message_visibility(
                    QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
                time.sleep(0.2)  # not ours: leave it to its own worker
                continue
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            served = serve_run(client, body["runId"], word_delay_s=word_delay_s, idle_s=idle_s, say=say)
            if served and once:
                return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--state-dir", type=Path, default=Path(".devstack"))
    parser.add_argument("--api-key", help="a key of the sessions' environment (default: the stack's dev key)")
    parser.add_argument("--env-id", help="that key's environment (default: the dev key's)")
    parser.add_argument("--task", default="chat-agent")
    parser.add_argument("--word-delay", type=float, default=0.05, help="seconds per streamed word")
    parser.add_argument("--idle-s", type=float, default=30.0, help="serve a run until idle this long")
    parser.add_argument("--once", action="store_true", help="exit after serving one run")
    args = parser.parse_args(argv)
    info = json.loads((args.state_dir / "stack.json").read_text())
    sqs = boto3.client(
        "sqs",
        endpoint_url=info["awsEndpointUrl"],
        region_name=info["region"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )

    def say(line: str) -> None:
        print(line, flush=True)

    with Sluice(info["apiUrl"], args.api_key or info["apiKey"], stream_url=info.get("streamUrl")) as client:
        consume(
            client,
            sqs,
            info["queueUrls"]["RunQueue"],
            task=args.task,
            env_id=args.env_id or info["envId"],
            once=args.once,
            word_delay_s=args.word_delay,
            idle_s=args.idle_s,
            say=say,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
