from __future__ import annotations

from typing import Any

import pytest

from sluice_client.chat import (
    ChatMessage,
    MalformedSegment,
    MessageAssembler,
    TextPart,
    ToolPart,
    cleanup_aborted_parts,
)
from tests.unit.sessions.builders import reply, text_chunks


def assemble(chunks: list[dict[str, Any]]) -> MessageAssembler:
    assembler = MessageAssembler(fallback_id="msg_fallback")
    for chunk in chunks:
        assembler.feed(chunk)
    return assembler


def tool_call(call_id: str, name: str = "weather", args: Any = None) -> list[dict[str, Any]]:
    return [
        {"type": "tool-input-start", "toolCallId": call_id, "toolName": name},
        {"type": "tool-input-delta", "toolCallId": call_id, "inputTextDelta": '{"city"'},
        {"type": "tool-input-available", "toolCallId": call_id, "toolName": name, "input": args or {}},
    ]


def test_a_whole_reply_reduces_to_one_finished_message_with_its_id_and_text() -> None:
    assembler = assemble(reply("msg_1", "Hello there, friend"))
    message = assembler.message()
    assert assembler.finished
    assert message.id == "msg_1" and message.role == "assistant"
    assert message.parts == [TextPart(type="text", text="Hello there, friend", state="done")]


def test_reasoning_text_steps_and_tools_become_parts_in_stream_order() -> None:
    chunks = [
        {"type": "start", "messageId": "m", "messageMetadata": {"model": "a"}},
        {"type": "start-step"},
        {"type": "reasoning-start", "id": "r"},
        {"type": "reasoning-delta", "id": "r", "delta": "think"},
        {"type": "reasoning-end", "id": "r"},
        *tool_call("c1", args={"city": "Oslo"}),
        {"type": "tool-output-available", "toolCallId": "c1", "output": {"temp": -3}},
        *tool_call("c2"),
        {"type": "tool-output-error", "toolCallId": "c2", "errorText": "boom"},
        {"type": "finish-step"},
        *text_chunks("done"),
        {"type": "data-progress", "data": {"pct": 100}},
        {"type": "finish", "messageMetadata": {"tokens": 7}},
    ]
    message = assemble(chunks).message()
    assert [part.type for part in message.parts] == [
        "step-start",
        "reasoning",
        "dynamic-tool",
        "dynamic-tool",
        "text",
    ]
    first, second = message.tool_parts()
    assert (first.state, first.input, first.output) == ("output-available", {"city": "Oslo"}, {"temp": -3})
    assert (second.state, second.errorText) == ("output-error", "boom")
    assert message.metadata == {"model": "a", "tokens": 7}


def test_a_segment_without_finish_is_not_finished_and_keeps_streaming_states() -> None:
    assembler = assemble(
        [{"type": "start", "messageId": "m"}, {"type": "text-start", "id": "t"}, *tool_call("c")[:2]]
    )
    message = assembler.message()
    assert not assembler.finished
    assert [getattr(part, "state", None) for part in message.parts] == ["streaming", "input-streaming"]


@pytest.mark.parametrize(
    "chunk",
    [
        "not an object",
        {"type": "text-delta", "id": "never-started", "delta": "x"},
        {"type": "text-delta"},
        {"type": "tool-output-available", "toolCallId": "unknown", "output": 1},
        {"type": "tool-input-delta", "toolCallId": "unknown", "inputTextDelta": "{"},
        {"type": "tool-input-available", "toolCallId": "c"},
    ],
)
def test_a_chunk_that_does_not_fit_the_segment_is_malformed(chunk: Any) -> None:
    assembler = assemble([{"type": "start", "messageId": "m"}])
    with pytest.raises(MalformedSegment):
        assembler.feed(chunk)


def test_cleanup_keeps_seen_text_drops_unresolved_tools_and_empty_parts_and_marks_aborted() -> None:
    raw = ChatMessage.model_validate(
        {
            "id": "m",
            "role": "assistant",
            "metadata": {"model": "a"},
            "parts": [
                {"type": "step-start"},
                {"type": "text", "text": "Let me check", "state": "streaming"},
                {
                    "type": "dynamic-tool",
                    "toolCallId": "a",
                    "toolName": "w",
                    "state": "output-available",
                    "output": 1,
                },
                {
                    "type": "dynamic-tool",
                    "toolCallId": "b",
                    "toolName": "w",
                    "state": "input-available",
                    "input": {},
                },
                {"type": "dynamic-tool", "toolCallId": "c", "toolName": "w", "state": "input-streaming"},
                {"type": "reasoning", "text": "", "state": "streaming"},
                {"type": "step-start"},
            ],
        }
    )
    cleaned = cleanup_aborted_parts(raw)
    assert [part.type for part in cleaned.parts] == ["step-start", "text", "dynamic-tool"]
    assert cleaned.parts[1] == TextPart(type="text", text="Let me check", state="done")
    assert isinstance(cleaned.parts[2], ToolPart) and cleaned.parts[2].toolCallId == "a"
    assert cleaned.metadata == {"model": "a", "aborted": True}
    assert len(raw.parts) == 7, "the raw message is left as it was"
