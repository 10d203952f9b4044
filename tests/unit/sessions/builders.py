"""Messages and ``out`` chunks as the tests write them: short, and in the wire format itself."""

from __future__ import annotations

import re
from typing import Any

from sluice_client.chat import ChatMessage, InMemorySessionChannel, TurnCompleteRecord


def user(message_id: str, text: str = "hi") -> ChatMessage:
    return ChatMessage.model_validate(
        {"id": message_id, "role": "user", "parts": [{"type": "text", "text": text}]}
    )


def assistant(message_id: str, text: str) -> ChatMessage:
    return ChatMessage.model_validate(
        {"id": message_id, "role": "assistant", "parts": [{"type": "text", "text": text}]}
    )


def text_chunks(text: str, part_id: str = "t1") -> list[dict[str, Any]]:
    return [
        {"type": "text-start", "id": part_id},
        *({"type": "text-delta", "id": part_id, "delta": word} for word in re.findall(r"\S+\s*", text)),
        {"type": "text-end", "id": part_id},
    ]


def reply(message_id: str, text: str) -> list[dict[str, Any]]:
    """A whole reply: start, its text, finish."""
    return [{"type": "start", "messageId": message_id}, *text_chunks(text), {"type": "finish"}]


def turn_complete(in_cursor: str | None) -> dict[str, Any]:
    return TurnCompleteRecord(inEventId=in_cursor).model_dump(mode="json")


def write_out(channel: InMemorySessionChannel, chunks: list[dict[str, Any]]) -> str:
    """Append chunks to ``out``; the id of the last."""
    ids = [channel.append("out", chunk) for chunk in chunks]
    return ids[-1]


def texts(messages: list[ChatMessage]) -> list[tuple[str, str]]:
    """(role, concatenated text) per message: what a conversation reads like."""
    return [
        (m.role, "".join(getattr(part, "text", "") for part in m.parts if part.type == "text"))
        for m in messages
    ]
