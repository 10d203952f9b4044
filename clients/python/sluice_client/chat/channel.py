"""How the sessions core talks to a session: read ``in`` or ``out`` after a cursor, append to ``out``,
read and write the snapshot. The HTTP implementation (streams client plus session routes) and the
in-memory one below both satisfy it, so the recovery logic never knows which it has."""

from __future__ import annotations

import threading
from typing import Literal, Protocol

from pydantic import JsonValue

from sluice_wire.chat import ChannelRecord, ChatMessage, InMessage, entry_key

Io = Literal["in", "out"]


class SessionChannel(Protocol):
    def read(self, io: Io, after: str | None) -> list[ChannelRecord]:
        """The records of ``io`` after the entry id ``after`` (from the start when None), oldest
        first, as far as they go now: it drains and returns, it never waits for more."""
        ...

    def append_out(self, data: JsonValue) -> str:
        """Append one chunk to ``out``; returns its entry id."""
        ...

    def read_snapshot(self) -> str | bytes | None:
        """The stored snapshot as written, or None when there is none."""
        ...

    def write_snapshot(self, body: str) -> None: ...


class InMemorySessionChannel:
    """A session held in memory, with the same id ordering as Redis streams; for tests and examples."""

    def __init__(self) -> None:
        self._records: dict[Io, list[ChannelRecord]] = {"in": [], "out": []}
        self._sequence = 0
        self._lock = threading.Lock()
        self.snapshot: str | None = None

    def append(self, io: Io, data: JsonValue) -> str:
        with self._lock:
            self._sequence += 1
            record = ChannelRecord(id=f"{self._sequence}-0", data=data)
            self._records[io].append(record)
            return record.id

    def send(self, message: ChatMessage) -> str:
        """What a user's client does: a submit-message record on ``in``."""
        return self.append("in", InMessage(message=message).model_dump(mode="json"))

    def records(self, io: Io) -> list[ChannelRecord]:
        with self._lock:
            return list(self._records[io])

    def read(self, io: Io, after: str | None) -> list[ChannelRecord]:
        records = self.records(io)
        if after is None:
            return records
        return [record for record in records if entry_key(record.id) > entry_key(after)]

    def append_out(self, data: JsonValue) -> str:
        return self.append("out", data)

    def read_snapshot(self) -> str | None:
        return self.snapshot

    def write_snapshot(self, body: str) -> None:
        self.snapshot = body
