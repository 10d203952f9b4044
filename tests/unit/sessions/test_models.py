from __future__ import annotations

import pytest
from pydantic import ValidationError

from sluice_client.chat import ChannelRecord, ChatMessage, TurnCompleteRecord
from sluice_wire.chat import OtherPart, entry_key, is_control


def test_parts_outside_the_vocabulary_are_kept_verbatim() -> None:
    raw = {"id": "u", "role": "user", "parts": [{"type": "file", "url": "s3://x", "mediaType": "image/png"}]}
    message = ChatMessage.model_validate(raw)
    assert isinstance(message.parts[0], OtherPart)
    assert message.model_dump(mode="json", exclude_none=True) == raw


def test_a_message_needs_an_id_and_a_known_role() -> None:
    with pytest.raises(ValidationError):
        ChatMessage.model_validate({"id": "", "role": "user"})
    with pytest.raises(ValidationError):
        ChatMessage.model_validate({"id": "m", "role": "robot"})


def test_record_data_is_any_json_value() -> None:
    for data in ({"a": [1, None]}, [1, 2], "text", 3.5, True, None):
        assert ChannelRecord(id="1-0", data=data).data == data


def test_entry_ids_sort_in_stream_order_not_as_strings() -> None:
    assert entry_key("10-0") > entry_key("9-3") > entry_key("9-2")
    with pytest.raises(ValidationError):
        ChannelRecord(id="not-an-id", data=None)


def test_turn_complete_is_a_control_record_and_chunks_are_not() -> None:
    assert is_control(TurnCompleteRecord(inEventId="3-0").model_dump())
    assert is_control({"type": "sluice:something-later"})
    assert not is_control({"type": "text-delta", "id": "t", "delta": "sluice:"})
    assert not is_control("sluice:turn-complete")
