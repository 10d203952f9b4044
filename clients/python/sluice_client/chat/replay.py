"""Reading back what a session's channels hold after a cursor: the turns and the cut-off reply on
``out``, the ``in`` cursor that the last completed turn recorded, and the user messages on ``in``."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from pydantic import TypeAdapter, ValidationError

from sluice_client.chat.assemble import MessageAssembler, cleanup_aborted_parts
from sluice_client.chat.errors import MalformedSegment
from sluice_wire.chat import (
    SUBMIT_MESSAGE,
    TURN_COMPLETE,
    USER_MESSAGE,
    ChannelRecord,
    ChatMessage,
    InMessage,
    InRecord,
    InStop,
    TurnCompleteRecord,
    UserMessageRecord,
    is_control,
)

logger = logging.getLogger(__name__)

_IN_RECORD = TypeAdapter[InRecord](InRecord)


@dataclass(frozen=True)
class ReplayedTurn:
    """A turn that a turn-complete record closed: its assistant messages and the ``in`` cursor."""

    messages: list[ChatMessage]
    in_cursor: str | None


@dataclass
class OutReplay:
    turns: list[ReplayedTurn] = field(default_factory=list)
    # Finished replies after the last turn-complete (the run died between ``finish`` and the record).
    open_messages: list[ChatMessage] = field(default_factory=list)
    # User messages recorded on ``out`` (they came in a payload) after the last turn-complete.
    open_users: list[ChatMessage] = field(default_factory=list)
    partial: ChatMessage | None = None
    # The partial as streamed, before cleanup: its unresolved tool calls are the pending ones.
    raw_partial: ChatMessage | None = None
    last_event_id: str | None = None


@dataclass(frozen=True)
class UserRecord:
    """A user message and the ``in`` entry it came in (None: it came in the run's payload)."""

    record_id: str | None
    message: ChatMessage


@dataclass(frozen=True)
class StopRequest:
    """A ``{"kind": "stop"}`` record on ``in``: the user asked to stop the reply in progress."""

    record_id: str


def turn_complete_cursor(data: object) -> tuple[bool, str | None]:
    """(whether ``data`` is a turn-complete record, the ``in`` cursor it carries)."""
    if not (isinstance(data, dict) and data.get("type") == TURN_COMPLETE):
        return False, None
    try:
        return True, TurnCompleteRecord.model_validate(data).inEventId
    except ValidationError:
        return True, None


def _recorded_user(record: ChannelRecord) -> ChatMessage | None:
    if not (isinstance(record.data, dict) and record.data.get("type") == USER_MESSAGE):
        return None
    try:
        return UserMessageRecord.model_validate(record.data).message
    except ValidationError as exc:
        logger.warning("sessions.user_record_skipped", extra={"recordId": record.id, "error": str(exc)})
        return None


def replay_out(records: Iterable[ChannelRecord]) -> OutReplay:
    """Split ``out`` at ``start`` / ``finish`` and reduce each segment to a message. A segment cut off
    by the next ``start``, turn-complete (a recovery boot commits with one) or recorded user message
    is settled as an aborted message; the trailing one becomes the partial. A corrupt segment is
    skipped with a warning."""
    replay = OutReplay()
    current: list[ChatMessage] = []
    segment: MessageAssembler | None = None

    def close_cut_off() -> None:
        if segment is not None:
            current.append(cleanup_aborted_parts(segment.message()))

    for record in records:
        replay.last_event_id = record.id
        if is_control(record.data):
            is_turn_complete, cursor = turn_complete_cursor(record.data)
            user = _recorded_user(record)
            if is_turn_complete or user is not None:
                close_cut_off()
                segment = None
            if is_turn_complete:
                replay.turns.append(ReplayedTurn(current, cursor))
                current = []
            elif user is not None:
                current.append(user)
            continue
        if isinstance(record.data, dict) and record.data.get("type") == "start":
            close_cut_off()
            segment = MessageAssembler(fallback_id=f"msg_{record.id}")
        if segment is None:
            continue  # outside any segment, or the rest of a corrupt one
        try:
            segment.feed(record.data)
        except MalformedSegment as exc:
            logger.warning("sessions.out_segment_skipped", extra={"recordId": record.id, "error": str(exc)})
            segment = None
            continue
        if segment.finished:
            current.append(segment.message())
            segment = None
    # A recorded user message after the last turn-complete was never answered in a committed turn.
    replay.open_users = [message for message in current if message.role == "user"]
    replay.open_messages = [message for message in current if message.role != "user"]
    if segment is not None:
        replay.raw_partial = segment.message()
        replay.partial = cleanup_aborted_parts(replay.raw_partial)
    return replay


def find_in_cursor(records: Iterable[ChannelRecord]) -> str | None:
    """The ``in`` cursor of the LAST turn-complete record that carries one."""
    found: str | None = None
    for record in records:
        _, cursor = turn_complete_cursor(record.data)
        found = cursor or found
    return found


def read_in(records: Iterable[ChannelRecord]) -> list[UserRecord | StopRequest]:
    """The user messages (``kind: "message"``, trigger ``submit-message``) and the stop requests
    among ``in`` records, in order; other kinds are passed over, a record that does not parse is
    skipped with a warning."""
    found: list[UserRecord | StopRequest] = []
    for record in records:
        try:
            parsed = _IN_RECORD.validate_python(record.data)
        except ValidationError as exc:
            logger.warning("sessions.in_record_skipped", extra={"recordId": record.id, "error": str(exc)})
            continue
        if isinstance(parsed, InMessage) and parsed.trigger == SUBMIT_MESSAGE:
            found.append(UserRecord(record.id, parsed.message))
        elif isinstance(parsed, InStop):
            found.append(StopRequest(record.id))
    return found


def replay_in(records: Iterable[ChannelRecord]) -> list[UserRecord]:
    """The user messages among ``in`` records: what recovery answers (a stop that a dead run never
    read stopped nothing that recovery could resume)."""
    return [item for item in read_in(records) if isinstance(item, UserRecord)]
