"""Durable chat sessions from the SDK: ``client.sessions`` for apps, ``HttpSessionChannel`` for workers.

    session = client.sessions.create("chat", "chat-agent", external_id="conversation-42")
    client.sessions.send(session.id, "Hello!")            # a user message on ``in``
    for message in client.sessions.read(session.id, "out"):
        print(message.data)

    # the session's task handler in a worker (``sluice_client.worker.Worker``); the attempt makes a
    # retried attempt boot as a continuation, as a continuation run does:
    def chat(task: TaskRun) -> None:
        payload = SessionRunPayload.model_validate(task.payload)
        channel = client.sessions.channel(payload.sessionId)
        MyAgent(channel, payload, run_id=task.id, attempt=task.attempt).serve()

Writes go through the streams credential cache with the slot ``("session", session id, io)``,
so a worker mints a channel once and re-mints only when its token is refused or near expiry.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

from pydantic import BaseModel, ConfigDict, JsonValue

from sluice_client.chat.channel import Io
from sluice_client.errors import NotFoundError
from sluice_client.streams import StreamMessage, Streams, StreamWriter
from sluice_client.transport import Transport
from sluice_wire.chat import ChannelRecord, ChatMessage, InMessage, TextPart
from sluice_wire.sessions import SessionView


class SessionInfo(SessionView):
    """A session as the API answers it: the wire model the routes answer with (``sluice_wire.sessions``), so
    the two cannot drift. ``isCached`` is the create's answer; fields a newer server adds are kept."""

    model_config = ConfigDict(extra="allow")

    isCached: bool = False


class SessionPage(BaseModel):
    data: list[SessionInfo]
    nextCursor: str | None = None


def session_path(ref: str) -> str:
    return f"/api/v1/sessions/{quote(ref, safe='')}"


def user_message(text: str, message_id: str | None = None) -> ChatMessage:
    return ChatMessage(
        id=message_id or f"msg_{uuid.uuid4().hex}", role="user", parts=[TextPart(type="text", text=text)]
    )


class Sessions:
    def __init__(self, transport: Transport, streams: Streams) -> None:
        self.transport = transport
        self.streams = streams

    def create(
        self,
        type: str,
        task_id: str,
        *,
        external_id: str | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        trigger_config: dict[str, Any] | None = None,
    ) -> SessionInfo:
        """Create the session and start its first run; with ``external_id``, the one session of
        this environment with that id (``isCached`` when it existed)."""
        body: dict[str, Any] = {"type": type, "taskId": task_id}
        optional = {
            "externalId": external_id,
            "tags": tags,
            "metadata": metadata,
            "triggerConfig": trigger_config,
        }
        body.update({name: value for name, value in optional.items() if value is not None})
        return SessionInfo.model_validate(self.transport.json("POST", "/api/v1/sessions", json=body))

    def get(self, ref: str) -> SessionInfo:
        """By id (``session_...``) or externalId."""
        return SessionInfo.model_validate(self.transport.json("GET", session_path(ref)))

    def list(
        self,
        *,
        type: str | None = None,
        tag: str | None = None,
        status: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> SessionPage:
        """One page, newest first; pass ``nextCursor`` back for the next."""
        query = {"type": type, "tag": tag, "status": status, "limit": limit, "cursor": cursor}
        params = urlencode({k: v for k, v in query.items() if v is not None})
        return SessionPage.model_validate(self.transport.json("GET", f"/api/v1/sessions?{params}"))

    def close(self, ref: str) -> SessionInfo:
        return SessionInfo.model_validate(self.transport.json("POST", session_path(ref) + "/close"))

    def writer(self, session_id: str, io: Io) -> StreamWriter:
        """A writer of one channel (``out`` needs a secret API key). Mints through the cache."""
        return self.streams.writer_for(("session", session_id, io))

    def send(self, session_id: str, message: ChatMessage | str) -> str:
        """Send a user message on ``in``; the entry id. The message id is the part id, so a retried
        send lands once. Starts a continuation run when the session has no live run."""
        chat = user_message(message) if isinstance(message, str) else message
        record = InMessage(message=chat).model_dump(mode="json")
        return self.writer(session_id, "in").append(record, part_id=chat.id)[0]

    def read(self, ref: str, io: Io, last_event_id: str | None = None) -> Iterator[StreamMessage]:
        """Follow a channel over SSE until the session is closed, resuming across reconnects."""
        return self.streams.read_slot(("session", ref, io), last_event_id)

    def records(self, ref: str, io: Io, after: str | None = None) -> builtins.list[ChannelRecord]:
        """The channel's records after ``after`` as far as they go now (it never waits)."""
        messages = self.streams.records_slot(("session", ref, io), after)
        return [ChannelRecord(id=message.id, data=message.data) for message in messages]

    def read_snapshot(self, ref: str) -> str | None:
        try:
            return self.transport.request("GET", session_path(ref) + "/snapshot").text
        except NotFoundError:
            return None

    def write_snapshot(self, ref: str, body: str) -> None:
        self.transport.request(
            "PUT",
            session_path(ref) + "/snapshot",
            content=body.encode(),
            headers={"content-type": "application/json"},
        )

    def channel(self, session_id: str) -> HttpSessionChannel:
        return HttpSessionChannel(self, session_id)


class HttpSessionChannel:
    """The ``SessionChannel`` a worker gives ``ChatAgent``: the session's channels and snapshot
    over HTTP. Appends to ``out`` carry a part id, so the transport's retries land them once."""

    def __init__(self, sessions: Sessions, session_id: str) -> None:
        self.sessions = sessions
        self.session_id = session_id
        self._out = sessions.writer(session_id, "out")

    def read(self, io: Io, after: str | None) -> list[ChannelRecord]:
        return self.sessions.records(self.session_id, io, after)

    def append_out(self, data: JsonValue) -> str:
        return self._out.append(data)[0]

    def read_snapshot(self) -> str | None:
        return self.sessions.read_snapshot(self.session_id)

    def write_snapshot(self, body: str) -> None:
        self.sessions.write_snapshot(self.session_id, body)
