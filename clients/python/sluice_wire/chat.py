"""The session wire format: what travels on a session's two channels and what the snapshot holds.

This is the contract between the agent (the worker that writes ``out`` and reads ``in``), the SSE
readers of both channels, and the session routes that store the snapshot. Every record on either
channel is ``{"id": "<stream entry id>", "data": <JSON>}``; ids are Redis stream ids
(``<ms>-<seq>``), ordered, and they are the cursors everywhere below.

``out`` (agent -> user): the AI SDK's UI message stream chunks, so an AI SDK frontend renders them
as they arrive. One assistant message is the chunks from ``start`` to ``finish``:

    {"type": "start", "messageId": "msg_1"}
    {"type": "start-step"}                                    {"type": "finish-step"}
    {"type": "text-start", "id": "t1"}        {"type": "text-delta", "id": "t1", "delta": "Hel"}
    {"type": "text-end", "id": "t1"}          (reasoning-start / -delta / -end alike)
    {"type": "tool-input-start", "toolCallId": "c1", "toolName": "weather"}
    {"type": "tool-input-delta", "toolCallId": "c1", "inputTextDelta": "{\\"city\\""}
    {"type": "tool-input-available", "toolCallId": "c1", "toolName": "weather", "input": {...}}
    {"type": "tool-input-error", "toolCallId": "c1", "toolName": "weather", "input": ..., "errorText": "..."}
    {"type": "tool-output-available", "toolCallId": "c1", "output": <JSON>}
    {"type": "tool-output-error", "toolCallId": "c1", "errorText": "..."}
    {"type": "message-metadata", "messageMetadata": <JSON>}
    {"type": "error", "errorText": "..."}     {"type": "abort"}
    {"type": "finish"}

A message whose ``finish`` never came was cut off (cancel, crash, OOM): the next run recovers it as
the partial. ``error`` and ``abort`` tell live readers why the reply stopped; they end nothing.
Other chunk types (``data-*``, ``file``, ``source-url``, ...) pass through and are ignored here.

Control records, for the runtime and never for display, have a type that starts with ``sluice:``;
readers drop them. A turn-complete record closes a turn and carries the ``in`` cursor, the id of
the last ``in`` record the turn consumed (null when the turn's message came in the run's payload).
A user message that did not come on ``in`` (the first run's payload) is recorded before its reply,
so that ``out`` and ``in`` alone rebuild the conversation when no snapshot could be written:

    {"type": "sluice:turn-complete", "inEventId": "1732370000000-0"}
    {"type": "sluice:user-message", "message": <ChatMessage>}

``in`` (user -> agent): ``{"kind": ...}`` records. A user message is
``{"kind": "message", "trigger": "submit-message", "message": <ChatMessage>}`` (the AI SDK's other
trigger, ``regenerate-message``, is not replayed on recovery); ``{"kind": "stop"}`` asks to stop
the current reply; ``{"kind": "handover", ...}`` and ``{"kind": "handover-skip"}`` pass a session
between agents.

Messages are AI SDK UI messages: ``{"id", "role", "parts": [...], "metadata"?}`` with parts
``text`` / ``reasoning`` (``state``: streaming | done), ``step-start`` and ``dynamic-tool``
(``toolCallId``, ``toolName``, ``state``: input-streaming | input-available | output-available |
output-error, ``input``, ``output``, ``errorText``). Other part types are kept as they came.

The snapshot, written after each completed turn:
``{"version": 1, "savedAt", "messages", "lastOutEventId", "lastInEventId"}``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, JsonValue, StringConstraints, Tag

CONTROL_PREFIX = "sluice:"
TURN_COMPLETE: Final = "sluice:turn-complete"
USER_MESSAGE: Final = "sluice:user-message"
SUBMIT_MESSAGE = "submit-message"


# A stream entry id, ``<ms>-<seq>``: checked wherever one is read back, so that cursors always compare.
EntryId = Annotated[str, StringConstraints(pattern=r"^[0-9]+-[0-9]+$")]


class ChannelRecord(BaseModel):
    """One entry of ``in`` or ``out``: the stream entry id and the JSON the writer appended."""

    id: EntryId
    data: JsonValue = None


def entry_key(entry_id: str) -> tuple[int, int]:
    """A stream entry id as something that sorts in stream order (``"10-0"`` after ``"9-3"``)."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


# --- messages ---------------------------------------------------------------------------------


class TextPart(BaseModel):
    type: Literal["text", "reasoning"]
    text: str = ""
    state: Literal["streaming", "done"] = "done"


class StepStartPart(BaseModel):
    type: Literal["step-start"] = "step-start"


ToolState = Literal["input-streaming", "input-available", "output-available", "output-error"]
RESOLVED_STATES: frozenset[str] = frozenset({"output-available", "output-error"})


class ToolPart(BaseModel):
    """A tool call and, once it resolved, its output or error."""

    type: Literal["dynamic-tool"] = "dynamic-tool"
    toolCallId: str
    toolName: str
    state: ToolState
    input: JsonValue = None
    output: JsonValue = None
    errorText: str | None = None

    @property
    def resolved(self) -> bool:
        return self.state in RESOLVED_STATES


class OtherPart(BaseModel):
    """A part type this runtime does not interpret (files, sources, data parts): kept verbatim."""

    model_config = ConfigDict(extra="allow")
    type: str


def _tag_by_type(tags: dict[str, str]) -> Callable[[Any], str]:
    """A discriminator that picks the model by ``type`` and sends every unknown type to "other", so
    that a type this runtime does not know is carried along instead of failing the whole message."""

    def tag(value: Any) -> str:
        kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
        return tags.get(kind, "other") if isinstance(kind, str) else "other"

    return tag


_PART_TAGS = {"text": "text", "reasoning": "text", "step-start": "step-start", "dynamic-tool": "tool"}


Part = Annotated[
    Annotated[TextPart, Tag("text")]
    | Annotated[StepStartPart, Tag("step-start")]
    | Annotated[ToolPart, Tag("tool")]
    | Annotated[OtherPart, Tag("other")],
    Discriminator(_tag_by_type(_PART_TAGS)),
]


class ChatMessage(BaseModel):
    id: str = Field(min_length=1)
    role: Literal["system", "user", "assistant"]
    parts: list[Part] = Field(default_factory=list)
    metadata: JsonValue = None

    def tool_parts(self) -> list[ToolPart]:
        return [part for part in self.parts if isinstance(part, ToolPart)]


# --- out chunks -------------------------------------------------------------------------------


class StartChunk(BaseModel):
    type: Literal["start"]
    messageId: str | None = None
    messageMetadata: JsonValue = None


class FinishChunk(BaseModel):
    type: Literal["finish"]
    messageMetadata: JsonValue = None


class StepChunk(BaseModel):
    type: Literal["start-step", "finish-step"]


class TextChunk(BaseModel):
    type: Literal[
        "text-start", "text-delta", "text-end", "reasoning-start", "reasoning-delta", "reasoning-end"
    ]
    id: str
    delta: str = ""


class ToolInputChunk(BaseModel):
    type: Literal["tool-input-start", "tool-input-delta", "tool-input-available", "tool-input-error"]
    toolCallId: str
    toolName: str | None = None
    inputTextDelta: str = ""
    input: JsonValue = None
    errorText: str | None = None


class ToolOutputChunk(BaseModel):
    type: Literal["tool-output-available", "tool-output-error"]
    toolCallId: str
    output: JsonValue = None
    errorText: str | None = None


class MetadataChunk(BaseModel):
    type: Literal["message-metadata"]
    messageMetadata: JsonValue = None


class StopChunk(BaseModel):
    """``error`` or ``abort``: why a reply stopped, for live readers."""

    type: Literal["error", "abort"]
    errorText: str | None = None


class TurnCompleteRecord(BaseModel):
    type: Literal["sluice:turn-complete"] = TURN_COMPLETE
    inEventId: EntryId | None = None


class UserMessageRecord(BaseModel):
    type: Literal["sluice:user-message"] = USER_MESSAGE
    message: ChatMessage


class OtherChunk(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str


_CHUNK_TAGS = {
    "start": "start",
    "finish": "finish",
    "start-step": "step",
    "finish-step": "step",
    "message-metadata": "metadata",
    "error": "stop",
    "abort": "stop",
    TURN_COMPLETE: "turn-complete",
    **{f"{kind}-{edge}": "text" for kind in ("text", "reasoning") for edge in ("start", "delta", "end")},
    **{f"tool-input-{edge}": "tool-input" for edge in ("start", "delta", "available", "error")},
    **{f"tool-output-{edge}": "tool-output" for edge in ("available", "error")},
}


Chunk = Annotated[
    Annotated[StartChunk, Tag("start")]
    | Annotated[FinishChunk, Tag("finish")]
    | Annotated[StepChunk, Tag("step")]
    | Annotated[TextChunk, Tag("text")]
    | Annotated[ToolInputChunk, Tag("tool-input")]
    | Annotated[ToolOutputChunk, Tag("tool-output")]
    | Annotated[MetadataChunk, Tag("metadata")]
    | Annotated[StopChunk, Tag("stop")]
    | Annotated[TurnCompleteRecord, Tag("turn-complete")]
    | Annotated[OtherChunk, Tag("other")],
    Discriminator(_tag_by_type(_CHUNK_TAGS)),
]


def is_control(data: Any) -> bool:
    """A runtime control record on ``out``: never part of a message, never shown."""
    return isinstance(data, dict) and str(data.get("type", "")).startswith(CONTROL_PREFIX)


# --- in records -------------------------------------------------------------------------------


class InMessage(BaseModel):
    kind: Literal["message"] = "message"
    trigger: str = SUBMIT_MESSAGE
    message: ChatMessage


class InStop(BaseModel):
    kind: Literal["stop"] = "stop"


class InHandover(BaseModel):
    model_config = ConfigDict(extra="allow")
    kind: Literal["handover", "handover-skip"]


InRecord = Annotated[InMessage | InStop | InHandover, Field(discriminator="kind")]


# --- snapshot and run payload -----------------------------------------------------------------


class ChatSnapshot(BaseModel):
    version: Literal[1] = 1
    savedAt: datetime
    messages: list[ChatMessage]
    lastOutEventId: EntryId | None = None
    lastInEventId: EntryId | None = None


class SessionRunPayload(BaseModel):
    """What a run for a session receives: the first run carries the first message, a continuation
    run (after cancel, crash or OOM of the previous one) waits for ``in``."""

    sessionId: str
    continuation: bool = False
    previousRunId: str | None = None
    message: ChatMessage | None = None
