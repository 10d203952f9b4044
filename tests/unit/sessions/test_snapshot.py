from __future__ import annotations

from datetime import datetime

import pytest

from sluice_client.chat import (
    ChatSnapshot,
    InMemorySessionChannel,
    load_snapshot,
    parse_snapshot,
    save_snapshot,
)
from tests.unit.sessions.builders import assistant, user


class BrokenStore(InMemorySessionChannel):
    def read_snapshot(self) -> str | None:
        raise ConnectionError("snapshot store unreachable")

    def write_snapshot(self, body: str) -> None:
        raise ConnectionError("snapshot store unreachable")


def test_a_written_snapshot_reads_back() -> None:
    channel = InMemorySessionChannel()
    messages = [user("u1"), assistant("a1", "hello")]
    save_snapshot(channel, messages, "4-0", "2-0")
    snapshot = load_snapshot(channel)
    assert snapshot is not None
    assert (snapshot.version, snapshot.messages, snapshot.lastOutEventId, snapshot.lastInEventId) == (
        1,
        messages,
        "4-0",
        "2-0",
    )
    assert isinstance(snapshot.savedAt, datetime)


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "",
        b"{not json",
        '{"version": 2, "savedAt": "2026-11-23T10:00:00Z", "messages": []}',
        '{"version": 1, "messages": []}',
        '{"version": 1, "savedAt": "2026-11-23T10:00:00Z", "messages": [{"role": "user"}]}',
        '{"version": 1, "savedAt": "2026-11-23T10:00:00Z", "messages": [], "lastInEventId": "x"}',
        "[]",
    ],
)
def test_a_missing_corrupt_or_other_version_snapshot_reads_as_none(raw: str | bytes | None) -> None:
    assert parse_snapshot(raw) is None


def test_a_snapshot_store_that_fails_reads_as_none_and_writes_never_raise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    channel = BrokenStore()
    assert load_snapshot(channel) is None
    save_snapshot(channel, [user("u1")], None, None)
    assert [(r.levelname, r.message) for r in caplog.records] == [
        ("WARNING", "sessions.snapshot_read_failed"),
        ("WARNING", "sessions.snapshot_write_failed"),
    ]


def test_the_snapshot_is_the_documented_json() -> None:
    channel = InMemorySessionChannel()
    save_snapshot(channel, [], "1-0", None)
    assert channel.snapshot is not None
    assert set(ChatSnapshot.model_validate_json(channel.snapshot).model_dump(mode="json")) == {
        "version",
        "savedAt",
        "messages",
        "lastOutEventId",
        "lastInEventId",
    }
