"""Durations as the reference API writes them: "30s", "10m", "2h", "7d", "1w", or seconds."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
# The longest duration accepted: a century. Any delay, TTL or key lifetime past it is a mistake,
# and the bound keeps "now + duration" far inside what datetime and DynamoDB can hold.
MAX_DURATION = timedelta(days=36525)


def parse_duration(value: str | int | float) -> timedelta:
    """``"2h"`` -> 2 hours; a bare number is seconds.

    Raises:
        ValueError: not a non-negative duration of at most ``MAX_DURATION``.
    """
    if isinstance(value, bool):
        raise ValueError("a duration is a string like '30s', '10m', '2h', '7d' or a number of seconds")
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an integer past a float's range (JSON allows 4300 digits)
            seconds = math.inf if value > 0 else -math.inf
    else:
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"invalid duration {value!r}: use e.g. '30s', '10m', '2h', '7d', '1w'")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    if not math.isfinite(seconds) or seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"a duration cannot be longer than {MAX_DURATION.days} days")
    return timedelta(seconds=seconds)


def resolve_instant(value: str | int | float, now: datetime) -> datetime:
    """A delay given as a duration from ``now`` or as an ISO-8601 instant."""
    if isinstance(value, str) and not _DURATION.match(value):
        try:
            instant = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"invalid delay {value!r}: a duration like '10m' or an ISO-8601 time") from None
        return instant if instant.tzinfo else instant.replace(tzinfo=UTC)
    return now + parse_duration(value)
