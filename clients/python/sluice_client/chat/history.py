"""Questions a chat agent asks of its history: which tool calls wait for a result, which have one,
and which results in an incoming message are new (so a side effect fires once per tool call)."""

from __future__ import annotations

from collections.abc import Iterable

from sluice_wire.chat import ChatMessage, ToolPart


def pending_tool_calls(messages: Iterable[ChatMessage]) -> list[ToolPart]:
    """Tool calls whose input is complete and whose result never came, oldest first. A call whose
    input was still streaming is not pending: there is nothing to execute yet."""
    calls = [part for message in messages for part in message.tool_parts()]
    resolved = {part.toolCallId for part in calls if part.resolved}
    return [part for part in calls if part.state == "input-available" and part.toolCallId not in resolved]


def resolved_tool_calls(messages: Iterable[ChatMessage]) -> list[ToolPart]:
    """Tool calls that have an output or an error, oldest first."""
    return [part for message in messages for part in message.tool_parts() if part.resolved]


def new_tool_results(message: ChatMessage, history: Iterable[ChatMessage]) -> list[ToolPart]:
    """The resolved tool calls in ``message`` that ``history`` does not already hold resolved: a
    re-sent message yields nothing, a first result yields itself."""
    known = {part.toolCallId for part in resolved_tool_calls(history)}
    return [part for part in message.tool_parts() if part.resolved and part.toolCallId not in known]


def merge_by_id(base: Iterable[ChatMessage], updates: Iterable[ChatMessage]) -> list[ChatMessage]:
    """``base`` in order with each message that ``updates`` also holds replaced by that version,
    then the updates that ``base`` did not hold, in their order."""
    merged = {message.id: message for message in base}
    for message in updates:
        merged[message.id] = message
    return list(merged.values())
