from __future__ import annotations

from typing import Any

from sluice_client.chat import ChannelRecord, StopRequest, UserRecord, find_in_cursor, read_in, replay_in
from tests.unit.sessions.builders import turn_complete, user


def message_record(record_id: str, message_id: str, trigger: str = "submit-message") -> ChannelRecord:
    data = {"kind": "message", "trigger": trigger, "message": user(message_id).model_dump(mode="json")}
    return ChannelRecord(id=record_id, data=data)


def test_extracts_user_messages_from_submit_message_records_with_their_entry_ids() -> None:
    users = replay_in([message_record("1-0", "u1"), message_record("2-0", "u2")])
    assert [(u.record_id, u.message.id) for u in users] == [("1-0", "u1"), ("2-0", "u2")]


def test_ignores_non_message_variants() -> None:
    others = [
        ChannelRecord(id="2-0", data={"kind": "stop"}),
        ChannelRecord(id="3-0", data={"kind": "handover", "to": "agent-b"}),
        ChannelRecord(id="4-0", data={"kind": "handover-skip"}),
    ]
    assert [u.message.id for u in replay_in([*others, message_record("5-0", "u")])] == ["u"]


def test_read_in_keeps_stop_requests_in_order_with_the_messages() -> None:
    records = [
        message_record("1-0", "u1"),
        ChannelRecord(id="2-0", data={"kind": "stop"}),
        ChannelRecord(id="3-0", data={"kind": "handover-skip"}),
        message_record("4-0", "u2"),
    ]
    found = read_in(records)
    assert [type(item) for item in found] == [UserRecord, StopRequest, UserRecord]
    assert [item.record_id for item in found] == ["1-0", "2-0", "4-0"]


def test_ignores_message_records_that_are_not_submit_message() -> None:
    assert replay_in([message_record("1-0", "u", trigger="regenerate-message")]) == []


def test_ignores_records_whose_message_is_missing_or_empty() -> None:
    bad: list[Any] = [
        {"kind": "message", "trigger": "submit-message"},
        {"kind": "message", "trigger": "submit-message", "message": None},
        {"kind": "message", "trigger": "submit-message", "message": {}},
        {},
    ]
    assert replay_in([ChannelRecord(id=f"{n}-0", data=data) for n, data in enumerate(bad, 1)]) == []


def test_skips_non_object_record_data() -> None:
    junk = [ChannelRecord(id=f"{n}-0", data=data) for n, data in enumerate(["text", 3, None, [1]], 1)]
    assert [u.message.id for u in replay_in([*junk, message_record("9-0", "u")])] == ["u"]


def test_returns_an_empty_list_when_there_are_no_records() -> None:
    assert replay_in([]) == []


def test_find_in_cursor_returns_the_last_turn_completes_cursor() -> None:
    out = [
        ChannelRecord(id=f"{n}-0", data=turn_complete(cursor)) for n, cursor in enumerate(["3-0", "7-0"], 1)
    ]
    assert find_in_cursor(out) == "7-0"


def test_find_in_cursor_ignores_other_control_records_and_turn_completes_without_a_cursor() -> None:
    out = [
        ChannelRecord(id="1-0", data=turn_complete("3-0")),
        ChannelRecord(id="2-0", data={"type": "sluice:other", "inEventId": "9-0"}),
        ChannelRecord(id="3-0", data=turn_complete(None)),
        ChannelRecord(id="4-0", data={"type": "sluice:turn-complete", "inEventId": "garbage"}),
    ]
    assert find_in_cursor(out) == "3-0"


def test_find_in_cursor_is_none_when_no_record_carries_one() -> None:
    assert find_in_cursor([ChannelRecord(id="1-0", data={"type": "finish"})]) is None
    assert find_in_cursor([]) is None
