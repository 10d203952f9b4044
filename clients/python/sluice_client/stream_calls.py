"""What the sync and asyncio stream clients share, with no I/O of its own: where a slot's stream
lives, what a write sends and when it is tried again with fresh credentials, and a reader's place
across reconnects. ``streams`` and ``streams_async`` only add the calls (plain or awaited).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, Literal, Protocol, TypeVar
from urllib.parse import quote

import httpx
from httpx_sse import ServerSentEvent

from sluice_client.credentials import Slot, StreamCredentials
from sluice_client.errors import ApiConnectionError, AuthenticationError
from sluice_client.transport import RetryOptions, decode, retry_delay

JSON = "application/json"
NDJSON = "application/x-ndjson"
CURSOR_HEADER = "x-stream-cursor"
END_EVENT = "end"
# What the API takes as a stream key and as a Last-Event-ID (sluice.streams' STREAM_KEY_PATTERN
# and ENTRY_ID_PATTERN), so that a client can refuse a bad one before any request.
STREAM_KEY_PATTERN = r"^[^\s\x00-\x1f\x7f]{1,256}$"
ENTRY_ID_PATTERN = r"^\d{1,19}-\d{1,19}$"
# A token this close to expiry is re-minted before use: longer than any append with its retries.
DEFAULT_REFRESH_MARGIN_S = 300.0
# A write that fails with these was refused with the slot's credentials (401), or lost with them
# (a connection error): it is tried once more, with credentials minted afresh.
CREDENTIAL_FAILURES = (AuthenticationError, ApiConnectionError)
WRITE_ATTEMPTS = 2

E = TypeVar("E")  # a cache entry: a Future (threads) or an asyncio Task


@dataclass(frozen=True)
class StreamMessage:
    """One chunk as a reader receives it: its entry id (resumable) and its value."""

    id: str
    data: Any


def stream_path(run_id: str, key: str) -> str:
    return f"/realtime/v1/streams/{quote(run_id, safe='')}/{quote(key, safe='')}"


def channel_path(session_id: str, io: str) -> str:
    return f"/realtime/v1/sessions/{quote(session_id, safe='')}/{quote(io, safe='')}"


def run_slot(run_id: str, key: str) -> Slot:
    return ("run", run_id, key)


def slot_path(slot: Slot) -> str:
    """Where a slot's stream is minted and read: a run's stream, or a session's channel."""
    scope, owner, key = slot
    return channel_path(owner, key) if scope == "session" else stream_path(owner, key)


def new_part_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class WriteCall:
    """One write, built once and sent (again, after a re-mint) with whatever credentials the slot
    holds. An append carries a part id, so a retry of it never lands twice."""

    action: Literal["append", "close"]
    body: bytes
    content_type: str
    part_id: str | None

    @classmethod
    def append(cls, chunk: Any, part_id: str | None) -> WriteCall:
        return cls("append", json.dumps(chunk).encode(), JSON, part_id or new_part_id())

    @classmethod
    def append_many(cls, chunks: Iterable[Any], part_id: str | None) -> WriteCall:
        body = b"".join(json.dumps({"data": c}).encode() + b"\n" for c in chunks)
        return cls("append", body, NDJSON, part_id or new_part_id())

    @classmethod
    def close(cls) -> WriteCall:
        return cls("close", b"", JSON, None)

    def url(self, credentials: StreamCredentials) -> str:
        """``.../append`` or ``.../close`` of the stream the credentials are for."""
        return credentials.append_url.removesuffix("/append") + "/" + self.action

    def headers(self, credentials: StreamCredentials) -> dict[str, str]:
        headers = {"authorization": f"Bearer {credentials.token}", "content-type": self.content_type}
        if self.part_id:
            headers["x-part-id"] = self.part_id
        return headers


class SlotCache(Protocol[E]):
    def get(self, slot: Slot) -> E: ...
    def evict_if_same(self, slot: Slot, entry: E) -> bool: ...


class WriteAttempt(Generic[E]):
    """One attempt of a write with the credentials of the slot's ``entry``; ``with attempt:`` around
    the request. A failure with them (CREDENTIAL_FAILURES) evicts the slot only if it still holds
    this entry (a concurrent writer may have minted afresh already) and is swallowed, so that the
    next attempt mints again; the last attempt's failure is raised."""

    def __init__(self, cache: SlotCache[E], slot: Slot, last: bool) -> None:
        self.cache = cache
        self.slot = slot
        self.last = last
        self.entry = cache.get(slot)

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> bool:
        if error is None or not isinstance(error, CREDENTIAL_FAILURES):
            return False
        self.cache.evict_if_same(self.slot, self.entry)
        return not self.last


def write_attempts(cache: SlotCache[E], slot: Slot) -> Iterator[WriteAttempt[E]]:
    """The attempts of one write (a mint that fails is not one: it raises from the entry)."""
    for number in range(1, WRITE_ATTEMPTS + 1):
        yield WriteAttempt(cache, slot, last=number == WRITE_ATTEMPTS)


def entry_ids(response: httpx.Response) -> list[str]:
    """The entry ids a write answered (none for a close)."""
    return list(decode(response).get("ids", []))


class ReadCursor:
    """One reader's place in a stream across reconnects: where to resume (after the last id it
    yielded, never ``$``) and how long to wait before reconnecting after a failure."""

    def __init__(self, url: str, retry: RetryOptions, last_event_id: str | None) -> None:
        self.url = url
        self.retry = retry
        self.last_id = last_event_id
        self.failures = 0  # since the last message: a reader that makes progress never gives up

    def headers(self) -> dict[str, str]:
        return {"last-event-id": self.last_id} if self.last_id else {}

    def opened(self, response: httpx.Response) -> None:
        # Where the server's snapshot put a fresh reader: resuming from it keeps a reconnect
        # before the first event from skipping what arrived in between.
        self.last_id = self.last_id or response.headers.get(CURSOR_HEADER)

    def refused(self, response: httpx.Response) -> float:
        """The pause before reconnecting after a response that is not a success.

        Raises:
            ApiError: the read is refused for good (401, 404, ...) or after the last attempt.
        """
        self.failures += 1
        return retry_delay(self.retry, self.failures, f"GET {self.url}", response)

    def lost(self, error: httpx.TransportError) -> float:
        """The pause before reconnecting after a lost connection.

        Raises:
            ApiConnectionError: after the last attempt.
        """
        self.failures += 1
        return retry_delay(self.retry, self.failures, f"GET {self.url}", error=error)

    def message(self, sse: ServerSentEvent) -> StreamMessage | None:
        """A data event as a message, the cursor moved past it; None for anything else. A
        ``retry:`` frame has no data (the parser still reports the last id on it); keep-alives are
        comments, which the parser drops."""
        if sse.event != "message" or not sse.data or not sse.id:
            return None
        self.last_id, self.failures = sse.id, 0
        return StreamMessage(sse.id, json.loads(sse.data))
