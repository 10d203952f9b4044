"""Entry parse rules: defaults for older entries, FAILED with lastError, malformed entries."""

from __future__ import annotations

import pytest

from sluice.engine import RunError
from sluice.mollifier.errors import MalformedEntry
from sluice.mollifier.models import BufferEntry, Snapshot
from tests.unit.mollifier.conftest import snapshot

BASE = {
    "runId": "run_1",
    "envId": "env_a",
    "orgId": "org_a",
    "taskId": "hello",
    "snapshot": snapshot().model_dump_json(),
    "status": "QUEUED",
    "attempts": "0",
    "createdAt": "2026-01-01T00:00:00+00:00",
}


def test_a_complete_entry_parses() -> None:
    entry = BufferEntry.from_hash(
        {**BASE, "createdAtMicros": "5", "materialised": "true", "idempotencyLookupKey": "k"}
    )
    assert (entry.createdAtMicros, entry.materialised, entry.idempotencyLookupKey) == (5, True, "k")


def test_fields_added_later_default_for_older_entries() -> None:
    entry = BufferEntry.from_hash(BASE)
    assert (entry.createdAtMicros, entry.materialised, entry.idempotencyLookupKey, entry.lastError) == (
        0,
        False,
        "",
        None,
    )


def test_a_failed_entry_parses_with_its_last_error() -> None:
    entry = BufferEntry.from_hash({**BASE, "status": "FAILED", "lastError": '{"code": "X", "message": "m"}'})
    assert entry.lastError == RunError(code="X", message="m")


@pytest.mark.parametrize(
    "change", [{"status": "DONE"}, {"attempts": "-1"}, {"createdAt": "yesterday"}, {"runId": None}]
)
def test_an_invalid_entry_is_malformed(change: dict[str, object]) -> None:
    fields = {k: v for k, v in {**BASE, **change}.items() if v is not None}
    with pytest.raises(MalformedEntry):
        BufferEntry.from_hash(fields)


def test_snapshot_round_trips() -> None:
    original = snapshot(payload={"q": '"\\\n', "u": "🐢"}, tags=["a"], idempotencyKey="k")
    assert Snapshot.model_validate_json(original.model_dump_json()) == original
