from __future__ import annotations

from typing import Any

import pytest

from sluice_client.chat import ChannelRecord, replay_out
from tests.unit.sessions.builders import reply, text_chunks, texts, turn_complete, user


def records(*chunks: Any) -> list[ChannelRecord]:
    return [ChannelRecord(id=f"{n}-0", data=chunk) for n, chunk in enumerate(chunks, start=1)]


def test_completed_turns_come_back_whole_with_the_in_cursor_that_closed_them() -> None:
    replay = replay_out(
        records(*reply("a1", "one"), turn_complete("5-0"), *reply("a2", "two"), turn_complete("9-0"))
    )
    assert [(texts(turn.messages), turn.in_cursor) for turn in replay.turns] == [
        ([("assistant", "one")], "5-0"),
        ([("assistant", "two")], "9-0"),
    ]
    assert replay.partial is None and replay.open_messages == []
    assert replay.last_event_id == "12-0"


def test_filters_out_control_records() -> None:
    replay = replay_out(
        records(
            {"type": "sluice:future-control"}, *reply("a1", "one"), turn_complete(None), {"type": "sluice:x"}
        )
    )
    (turn,) = replay.turns
    assert texts(turn.messages) == [("assistant", "one")]
    assert all(part.type == "text" for part in turn.messages[0].parts)


def test_the_trailing_unfinished_segment_is_the_cleaned_partial_and_the_raw_form_is_kept() -> None:
    cut_off = [
        {"type": "start", "messageId": "a2"},
        *text_chunks("Let me look"),
        {"type": "tool-input-start", "toolCallId": "c1", "toolName": "search"},
        {"type": "tool-input-available", "toolCallId": "c1", "toolName": "search", "input": {"q": "x"}},
    ]
    replay = replay_out(records(*reply("a1", "one"), turn_complete("1-0"), *cut_off))
    assert replay.partial is not None and replay.raw_partial is not None
    assert texts([replay.partial]) == [("assistant", "Let me look")]
    assert replay.partial.metadata == {"aborted": True}
    assert replay.partial.tool_parts() == [], "strips orphaned in-flight tool parts from the partial"
    assert [call.toolCallId for call in replay.raw_partial.tool_parts()] == ["c1"]


def test_finished_replies_after_the_last_turn_complete_are_open_messages() -> None:
    replay = replay_out(records(*reply("a1", "one"), turn_complete("1-0"), *reply("a2", "two")))
    assert texts(replay.open_messages) == [("assistant", "two")]
    assert replay.partial is None


def test_a_segment_cut_off_by_a_later_start_or_a_turn_complete_settles_as_aborted() -> None:
    replay = replay_out(
        records(
            {"type": "start", "messageId": "a1"},
            *text_chunks("half"),
            turn_complete("3-0"),
            {"type": "start", "messageId": "a2"},
            *text_chunks("other half"),
            *reply("a3", "whole"),
        )
    )
    assert [m.id for m in replay.turns[0].messages] == ["a1"]
    assert replay.turns[0].messages[0].metadata == {"aborted": True}
    assert [(m.id, m.metadata) for m in replay.open_messages] == [("a2", {"aborted": True}), ("a3", None)]
    assert replay.partial is None


def test_recovers_from_a_malformed_segment_by_skipping_it_and_logging_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    replay = replay_out(
        records(
            *reply("a1", "good"),
            {"type": "start", "messageId": "bad"},
            {"type": "text-delta", "id": "never-started", "delta": "x"},
            *text_chunks("rest of the bad one"),
            {"type": "finish"},
            *reply("a3", "also good"),
        )
    )
    assert texts(replay.open_messages) == [("assistant", "good"), ("assistant", "also good")]
    assert [(r.levelname, r.message) for r in caplog.records] == [("WARNING", "sessions.out_segment_skipped")]


def test_chunks_outside_any_segment_are_ignored() -> None:
    replay = replay_out(records(*text_chunks("stray"), {"type": "finish"}, *reply("a1", "one")))
    assert texts(replay.open_messages) == [("assistant", "one")]


def test_an_empty_out_replays_to_nothing() -> None:
    replay = replay_out([])
    assert (replay.turns, replay.open_messages, replay.partial, replay.last_event_id) == ([], [], None, None)


def test_a_recorded_user_message_comes_back_before_its_reply_and_is_open_until_a_turn_complete() -> None:
    recorded = {
        "type": "sluice:user-message",
        "message": user("u1", "from the payload").model_dump(mode="json"),
    }
    committed = replay_out(records(recorded, *reply("a1", "one"), turn_complete(None)))
    assert texts(committed.turns[0].messages) == [("user", "from the payload"), ("assistant", "one")]
    cut_off = replay_out(records(recorded, {"type": "start", "messageId": "a1"}, *text_chunks("half")))
    assert [m.id for m in cut_off.open_users] == ["u1"] and cut_off.open_messages == []
    assert cut_off.partial is not None


def test_a_recorded_user_message_that_does_not_parse_is_skipped(caplog: pytest.LogCaptureFixture) -> None:
    replay = replay_out(
        records({"type": "sluice:user-message", "message": {"role": "user"}}, *reply("a1", "x"))
    )
    assert replay.open_users == [] and texts(replay.open_messages) == [("assistant", "x")]
    assert [r.message for r in caplog.records] == ["sessions.user_record_skipped"]
