"""A session kept in a real Redis (streams for ``in`` and ``out``, a string for the snapshot), so that
a worker in another process and the test share one session. The production channel is the streams
client plus the session routes; this one only has to honour the same ``SessionChannel`` contract."""

from __future__ import annotations

import json

import redis
from pydantic import JsonValue

from sluice_client.chat import ChannelRecord, ChatMessage, InMessage, Io


class RedisSessionChannel:
    def __init__(self, client: redis.Redis, session_id: str) -> None:
        self.client = client
        self.prefix = f"test-session:{{{session_id}}}"

    def _append(self, io: Io, data: JsonValue) -> str:
        return str(self.client.xadd(f"{self.prefix}:{io}", {"data": json.dumps(data)}))

    def send(self, message: ChatMessage) -> str:
        return self._append("in", InMessage(message=message).model_dump(mode="json"))

    def read(self, io: Io, after: str | None) -> list[ChannelRecord]:
        start = f"({after}" if after else "-"
        entries = self.client.xrange(f"{self.prefix}:{io}", start, "+")
        return [ChannelRecord(id=entry_id, data=json.loads(fields["data"])) for entry_id, fields in entries]

    def append_out(self, data: JsonValue) -> str:
        return self._append("out", data)

    def read_snapshot(self) -> str | None:
        value = self.client.get(f"{self.prefix}:snapshot")
        return str(value) if value is not None else None

    def write_snapshot(self, body: str) -> None:
        self.client.set(f"{self.prefix}:snapshot", body)
