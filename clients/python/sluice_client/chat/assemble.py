"""Chunks of ``out`` back into a message: the one reducer that both a live turn (the reply it just
streamed) and recovery (the turns a dead run streamed) use, so the two always agree.

Written here because the AI SDK's reducer (``readUIMessageStream``) is TypeScript only.
"""

from __future__ import annotations

from typing import Any

from pydantic import JsonValue, TypeAdapter, ValidationError

from sluice_client.chat.errors import MalformedSegment
from sluice_wire.chat import (
    ChatMessage,
    Chunk,
    FinishChunk,
    MetadataChunk,
    Part,
    StartChunk,
    StepChunk,
    StepStartPart,
    TextChunk,
    TextPart,
    ToolInputChunk,
    ToolOutputChunk,
    ToolPart,
)

_CHUNK = TypeAdapter[Chunk](Chunk)


def _merge_metadata(current: JsonValue, update: JsonValue) -> JsonValue:
    if update is None:
        return current
    if isinstance(current, dict) and isinstance(update, dict):
        return {**current, **update}
    return update


class MessageAssembler:
    """Feed one segment's chunks in order; ``message()`` is the assistant message so far."""

    def __init__(self, fallback_id: str) -> None:
        self._id = fallback_id
        self._metadata: JsonValue = None
        self._parts: list[Part] = []
        self._texts: dict[tuple[str, str], TextPart] = {}
        self._tools: dict[str, ToolPart] = {}
        self.finished = False

    def feed(self, data: Any) -> None:
        """Raises MalformedSegment: the chunk does not parse, or names a part never started."""
        try:
            chunk = _CHUNK.validate_python(data)
        except ValidationError as exc:
            raise MalformedSegment(f"chunk does not parse: {exc}") from exc
        if isinstance(chunk, StartChunk):
            self._id = chunk.messageId or self._id
            self._metadata = _merge_metadata(self._metadata, chunk.messageMetadata)
        elif isinstance(chunk, FinishChunk | MetadataChunk):
            self._metadata = _merge_metadata(self._metadata, chunk.messageMetadata)
            self.finished = self.finished or isinstance(chunk, FinishChunk)
        elif isinstance(chunk, StepChunk):
            if chunk.type == "start-step":
                self._parts.append(StepStartPart())
        elif isinstance(chunk, TextChunk):
            self._text(chunk)
        elif isinstance(chunk, ToolInputChunk):
            self._tool_input(chunk)
        elif isinstance(chunk, ToolOutputChunk):
            self._tool_output(chunk)
        # error, abort, control records and chunk types outside the vocabulary carry no content.

    def message(self) -> ChatMessage:
        return ChatMessage(
            id=self._id,
            role="assistant",
            parts=[part.model_copy() for part in self._parts],
            metadata=self._metadata,
        )

    def _text(self, chunk: TextChunk) -> None:
        kind, _, edge = chunk.type.partition("-")
        key = (kind, chunk.id)
        if edge == "start":
            part = TextPart(type="text" if kind == "text" else "reasoning", state="streaming")
            self._texts[key] = part
            self._parts.append(part)
            return
        part_or_none = self._texts.get(key)
        if part_or_none is None:
            raise MalformedSegment(f"{chunk.type} for {kind} part {chunk.id!r} that never started")
        if edge == "delta":
            part_or_none.text += chunk.delta
        else:
            part_or_none.state = "done"

    def _tool_input(self, chunk: ToolInputChunk) -> None:
        part = self._tools.get(chunk.toolCallId)
        if chunk.type == "tool-input-delta":
            if part is None:
                raise MalformedSegment(f"input delta for tool call {chunk.toolCallId!r} that never started")
            return
        if part is None:
            if chunk.toolName is None:
                raise MalformedSegment(f"{chunk.type} for tool call {chunk.toolCallId!r} without a toolName")
            part = ToolPart(toolCallId=chunk.toolCallId, toolName=chunk.toolName, state="input-streaming")
            self._tools[chunk.toolCallId] = part
            self._parts.append(part)
        if chunk.type == "tool-input-available":
            part.state, part.input = "input-available", chunk.input
        elif chunk.type == "tool-input-error":
            part.state, part.input, part.errorText = "output-error", chunk.input, chunk.errorText

    def _tool_output(self, chunk: ToolOutputChunk) -> None:
        part = self._tools.get(chunk.toolCallId)
        if part is None:
            raise MalformedSegment(f"{chunk.type} for unknown tool call {chunk.toolCallId!r}")
        if chunk.type == "tool-output-available":
            part.state, part.output = "output-available", chunk.output
        else:
            part.state, part.errorText = "output-error", chunk.errorText


def cleanup_aborted_parts(message: ChatMessage) -> ChatMessage:
    """A cut-off reply as it can go back to a model: text seen so far kept and closed, tool calls that
    never resolved removed (a model API rejects a call without its result), empty parts dropped, and
    the message marked ``{"aborted": true}`` in its metadata."""
    parts: list[Part] = []
    for part in message.parts:
        if isinstance(part, ToolPart) and not part.resolved:
            continue
        if isinstance(part, TextPart):
            if part.text:
                parts.append(part.model_copy(update={"state": "done"}))
            continue
        parts.append(part)
    while parts and isinstance(parts[-1], StepStartPart):
        parts.pop()
    metadata = message.metadata
    if metadata is None or isinstance(metadata, dict):
        metadata = {**(metadata or {}), "aborted": True}
    return message.model_copy(update={"parts": parts, "metadata": metadata})
