"""The conversation snapshot: written after each completed turn, read when a run picks the session
up. Reading is tolerant by design: a snapshot that is missing, unreadable, corrupt or of another
version only means a longer replay of ``out``, so it is never a reason to fail a run."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from pydantic import ValidationError

from sluice_client.chat.channel import SessionChannel
from sluice_wire.chat import ChatMessage, ChatSnapshot

logger = logging.getLogger(__name__)


def parse_snapshot(raw: str | bytes | None) -> ChatSnapshot | None:
    """The snapshot in ``raw``, or None when there is none or it is not a version 1 snapshot."""
    if not raw:
        return None
    try:
        return ChatSnapshot.model_validate_json(raw)
    except ValidationError as exc:
        logger.warning("sessions.snapshot_unusable", extra={"reason": exc.errors()[0].get("msg", "")})
        return None


def load_snapshot(channel: SessionChannel) -> ChatSnapshot | None:
    try:
        raw = channel.read_snapshot()
    except Exception as exc:  # any storage failure: recover from out alone
        logger.warning("sessions.snapshot_read_failed", extra={"error": repr(exc)})
        return None
    return parse_snapshot(raw)


def save_snapshot(
    channel: SessionChannel, messages: list[ChatMessage], last_out: str | None, last_in: str | None
) -> None:
    """Best effort: a snapshot that failed to write costs the next boot a longer replay, never the turn."""
    snapshot = ChatSnapshot(
        savedAt=datetime.now(UTC), messages=messages, lastOutEventId=last_out, lastInEventId=last_in
    )
    try:
        channel.write_snapshot(snapshot.model_dump_json())
    except Exception as exc:
        logger.warning("sessions.snapshot_write_failed", extra={"error": repr(exc)})
