"""The chat agent a worker runs for a session: subclass it, implement ``run``, call ``serve``.

    class Echo(ChatAgent):
        def run(self, messages):
            yield {"type": "text-start", "id": "t"}
            yield {"type": "text-delta", "id": "t", "delta": text_of(messages[-1])}
            yield {"type": "text-end", "id": "t"}

    Echo(channel, SessionRunPayload.model_validate(event), run_id=run_id, attempt=attempt).serve()

Every reply streams to ``out`` as it is produced, between a ``start`` and a ``finish`` that the
agent writes. A completed turn is committed with a turn-complete record (carrying the ``in``
cursor) and then a snapshot, so a run that dies at any point leaves the session in a state the
next run rebuilds: a cut-off reply has no ``finish`` and comes back as the partial.

While a reply streams, the agent looks at ``in`` every ``stop_check_s`` (between chunks): a
``{"kind": "stop"}`` record there stops that reply cleanly. ``run``'s generator is closed (its
``finally`` runs), an ``abort`` chunk tells live readers, and the turn is committed with the reply
as far as it went, cleaned as a cut-off reply is (``metadata.aborted``), so the next turn and any
later recovery see the same conversation. A stop that comes while no reply streams is ignored:
the reply it meant had finished. User messages seen meanwhile are answered after the turn.
"""

from __future__ import annotations

import logging
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator

from pydantic import JsonValue

from sluice_client.chat.assemble import MessageAssembler, cleanup_aborted_parts
from sluice_client.chat.channel import SessionChannel
from sluice_client.chat.errors import MalformedSegment
from sluice_client.chat.recovery import (
    Recovery,
    RecoveryPlan,
    apply_plan,
    consumed_cursor,
    default_plan,
    recover,
)
from sluice_client.chat.replay import StopRequest, UserRecord, read_in
from sluice_client.chat.snapshot import save_snapshot
from sluice_wire.chat import (
    ChatMessage,
    SessionRunPayload,
    TurnCompleteRecord,
    UserMessageRecord,
    entry_key,
    is_control,
)

logger = logging.getLogger(__name__)

# What live readers see when ``run`` fails; the exception itself goes to the worker's log only.
RUN_FAILED_TEXT = "The agent failed while answering."
_FRAMING_CHUNKS = frozenset({"start", "finish"})


def _later(cursor: str | None, candidate: str | None) -> str | None:
    if candidate is None:
        return cursor
    if cursor is None or entry_key(candidate) > entry_key(cursor):
        return candidate
    return cursor


class ChatAgent(ABC):
    # How often (seconds, at most) a streaming reply reads ``in`` for a stop: one read each time.
    stop_check_s: float = 0.5

    def __init__(
        self, channel: SessionChannel, payload: SessionRunPayload, *, run_id: str, attempt: int = 1
    ) -> None:
        self.channel = channel
        self.payload = payload
        self.session_id = payload.sessionId
        self.run_id = run_id
        self.attempt = attempt
        self.messages: list[ChatMessage] = []
        self._in_cursor: str | None = None  # durable: the last ``in`` entry a committed turn consumed
        self._read_cursor: str | None = None  # live: where the next read of ``in`` starts
        self._queued: list[UserRecord] = []  # read from ``in`` while a reply streamed, not answered yet
        self._stop_asked = False  # a stop record came while the current reply streamed

    @property
    def could_have_prior_state(self) -> bool:
        """A continuation, or a retried attempt of any run (a killed worker's run is retried by the
        run reaper, an OOM or a failure by the lifecycle): both boot as continuations."""
        return self.payload.continuation or self.attempt > 1

    @property
    def previous_run_id(self) -> str | None:
        """The run whose state this boot picks up: on a retried attempt this run itself (its
        previous attempt held the session), else the payload's ``previousRunId``."""
        return self.run_id if self.attempt > 1 else self.payload.previousRunId

    # --- hooks ----------------------------------------------------------------------------------

    def on_boot(self, *, continuation: bool, previous_run_id: str | None) -> None:
        """First thing in every run (and every attempt of one) that picks the session up, before
        any state is rebuilt. ``continuation`` is ``could_have_prior_state``; ``previous_run_id``
        is ``self.previous_run_id``."""
        return None

    def on_recovery_boot(self, recovery: Recovery) -> RecoveryPlan | None:
        """Only when the previous run died mid-reply (there is a partial). Return a plan to replace
        the default chain and/or turns; raising falls back to the defaults."""
        return None

    @abstractmethod
    def run(self, messages: list[ChatMessage]) -> Iterable[JsonValue]:
        """Answer the last message of ``messages``: yield the reply's ``out`` chunks (no ``start``,
        ``finish`` or control records: the agent writes those)."""

    def on_turn_complete(self, *, messages: list[ChatMessage], response: ChatMessage) -> None:
        """After a turn is committed; ``messages`` ends with ``response``."""
        return None

    # --- driving the session --------------------------------------------------------------------

    def write(self, chunk: JsonValue) -> str:
        """Append one chunk to ``out`` (also for hooks that want to tell the user something)."""
        return self.channel.append_out(chunk)

    def serve(self) -> list[ChatMessage]:
        """Boot, answer the recovered turns and then every user message waiting on ``in``; returns
        the conversation. It returns once ``in`` holds nothing new: waiting for the next message is
        the caller's (the live subscription)."""
        self.on_boot(continuation=self.could_have_prior_state, previous_run_id=self.previous_run_id)
        for user in self._boot():
            self._answer(user)
        self.answer_new()
        return self.messages

    def answer_new(self) -> int:
        """Answer every user message that arrived on ``in`` since the last read; how many. A worker
        that keeps its run alive between turns calls this when ``in`` has news (or on a timer)."""
        answered = 0
        while self._queued or self._read_in():
            self._answer(self._queued.pop(0))
            answered += 1
        return answered

    def _boot(self) -> list[UserRecord]:
        if not self.could_have_prior_state:
            return [UserRecord(None, self.payload.message)] if self.payload.message else []
        recovery = recover(self.channel, self.payload.message)
        self._in_cursor = recovery.in_cursor
        chain, turns = default_plan(recovery)
        if recovery.partial is not None:
            chain, turns = apply_plan(recovery, self._recovery_plan(recovery))
        self.messages = chain
        # The recovered users are answered from memory (or deliberately not at all): the live read
        # starts after the last of them.
        self._read_cursor = recovery.in_cursor
        for user in recovery.in_flight:
            self._read_cursor = _later(self._read_cursor, user.record_id)
        if recovery.partial is not None:
            # Commit the recovered chain, so a later replay sees the cut-off reply closed as aborted.
            self._commit(consumed_cursor(recovery, turns))
        return turns

    def _recovery_plan(self, recovery: Recovery) -> RecoveryPlan:
        try:
            return self.on_recovery_boot(recovery) or RecoveryPlan()
        except Exception:
            logger.exception("sessions.recovery_hook_failed", extra={"sessionId": self.session_id})
            return RecoveryPlan()

    def _read_in(self, streaming: bool = False) -> bool:
        """Queue the user messages that arrived on ``in`` since the last read; whether any did. A
        stop record read while a reply is ``streaming`` stops that reply; otherwise it is stale."""
        records = self.channel.read("in", self._read_cursor)
        if records:
            self._read_cursor = records[-1].id
        queued = len(self._queued)
        for item in read_in(records):
            if isinstance(item, StopRequest):
                self._stop_asked = self._stop_asked or streaming
            else:
                self._queued.append(item)
        return len(self._queued) > queued

    def _answer(self, user: UserRecord) -> None:
        self.messages.append(user.message)
        if user.record_id is None:  # not on ``in``: record it, so that ``out`` can rebuild this turn
            self.write(UserMessageRecord(message=user.message).model_dump(mode="json"))
        reply = MessageAssembler(fallback_id="")
        self._emit(reply, {"type": "start", "messageId": f"msg_{uuid.uuid4().hex}"})
        self._stop_asked = False
        try:
            self._stream(reply, iter(self.run(list(self.messages))))
        except Exception:
            self._stopped({"type": "error", "errorText": RUN_FAILED_TEXT})
            raise
        except BaseException:  # KeyboardInterrupt or SystemExit: the run is being cancelled
            self._stopped({"type": "abort"})
            raise
        if self._stop_asked:
            self._stopped({"type": "abort"})
            response = cleanup_aborted_parts(reply.message())  # what a replay of ``out`` makes of it
        else:
            self._emit(reply, {"type": "finish"})
            response = reply.message()
        self.messages.append(response)
        self._commit(_later(self._in_cursor, user.record_id))
        self.on_turn_complete(messages=list(self.messages), response=response)

    def _stream(self, reply: MessageAssembler, chunks: Iterator[JsonValue]) -> None:
        """Write ``run``'s chunks until they end or a stop is asked; then close the generator, so
        that a stopped ``run`` leaves through its ``finally``."""
        checked = time.monotonic()
        try:
            for chunk in chunks:
                kind = chunk.get("type") if isinstance(chunk, dict) else None
                if (isinstance(kind, str) and kind in _FRAMING_CHUNKS) or is_control(chunk):
                    raise MalformedSegment(f"run may not write {kind!r} chunks")
                self._emit(reply, chunk)
                if time.monotonic() - checked >= self.stop_check_s:
                    checked = time.monotonic()
                    if self._stop_requested():
                        return
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    def _stop_requested(self) -> bool:
        """Whether ``in`` asks to stop the reply. Fails open: when ``in`` cannot be read the reply
        goes on, and the next check reads what this one missed."""
        try:
            self._read_in(streaming=True)
        except Exception as exc:
            logger.warning("sessions.stop_check_failed", extra={"error": repr(exc)})
        return self._stop_asked

    def _emit(self, reply: MessageAssembler, chunk: JsonValue) -> None:
        reply.feed(chunk)  # first, so that a chunk that does not parse never reaches ``out``
        self.write(chunk)

    def _stopped(self, chunk: JsonValue) -> None:
        """Tell live readers why the reply stopped. Best effort: without it, the missing ``finish``
        alone marks the reply as cut off."""
        try:
            self.write(chunk)
        except Exception as exc:
            logger.warning("sessions.stop_chunk_failed", extra={"error": repr(exc)})

    def _commit(self, in_cursor: str | None) -> None:
        """The turn-complete record first: it alone makes the turn durable (a later replay reads it
        even when the snapshot write below fails)."""
        self._in_cursor = in_cursor
        record_id = self.write(TurnCompleteRecord(inEventId=in_cursor).model_dump(mode="json"))
        save_snapshot(self.channel, self.messages, record_id, in_cursor)
