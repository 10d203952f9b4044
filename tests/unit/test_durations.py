from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sluice.engine import parse_duration
from sluice.engine.durations import resolve_instant


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("10m", 600), ("2h", 7200), ("7d", 604800), ("1w", 604800), ("500ms", 0.5), (45, 45)],
)
def test_parse_duration(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("bad", ["", "10", "ten minutes", "-5s", -1, True, "5y"])
def test_parse_duration_rejects_garbage(bad: str | int) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_delay_as_duration_or_instant() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert resolve_instant("10m", now) == now + timedelta(minutes=10)
    assert resolve_instant("2026-01-02T00:00:00Z", now) == datetime(2026, 1, 2, tzinfo=UTC)
    with pytest.raises(ValueError):
        resolve_instant("tomorrow", now)
