from __future__ import annotations

from typing import Any

from sluice_client.chat import (
    ChatMessage,
    merge_by_id,
    new_tool_results,
    pending_tool_calls,
    resolved_tool_calls,
)
from tests.unit.sessions.builders import assistant, texts, user


def tools(message_id: str, *calls: tuple[str, str]) -> ChatMessage:
    parts: list[dict[str, Any]] = [
        {"type": "dynamic-tool", "toolCallId": call_id, "toolName": "t", "state": state}
        for call_id, state in calls
    ]
    return ChatMessage.model_validate({"id": message_id, "role": "assistant", "parts": parts})


def ids(parts: list[Any]) -> list[str]:
    return [part.toolCallId for part in parts]


def test_pending_tool_calls_have_complete_input_and_no_result_anywhere_later() -> None:
    history = [
        tools("a1", ("c1", "input-available"), ("c2", "input-streaming"), ("c3", "output-available")),
        tools("a1b", ("c4", "input-available")),
        tools("a2", ("c1", "output-available")),
    ]
    assert ids(pending_tool_calls(history)) == ["c4"]


def test_resolved_tool_calls_have_an_output_or_an_error() -> None:
    history = [tools("a1", ("c1", "output-available"), ("c2", "input-available"), ("c3", "output-error"))]
    assert ids(resolved_tool_calls(history)) == ["c1", "c3"]


def test_new_tool_results_are_the_resolutions_history_does_not_hold_yet() -> None:
    history = [user("u1"), tools("a1", ("c1", "output-available"), ("c2", "input-available"))]
    incoming = tools("a1", ("c1", "output-available"), ("c2", "output-available"))
    assert ids(new_tool_results(incoming, history)) == ["c2"]
    assert new_tool_results(incoming, [*history, incoming]) == [], "a re-sent message yields nothing"
    assert ids(new_tool_results(incoming, [])) == ["c1", "c2"]


def test_merge_by_id_keeps_order_and_lets_the_update_win() -> None:
    base = [user("u1", "q1"), assistant("a1", "old"), user("u2", "q2")]
    merged = merge_by_id(base, [assistant("a1", "new"), user("u3", "q3")])
    assert texts(merged) == [("user", "q1"), ("assistant", "new"), ("user", "q2"), ("user", "q3")]
