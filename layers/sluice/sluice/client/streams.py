"""Realtime streams from the SDK: writers that mint once per slot, and a reader that resumes.

    writer = client.streams.writer(run_id, "ai")
    writer.append({"delta": "Hel"})
    writer.append_many([{"delta": "lo"}, {"delta": "!"}])
    writer.close()
    for message in client.streams.read(run_id, "ai"):
        print(message.id, message.data)

Every append carries a part id, so the transport's own retries (and a retry after re-minting)
never land a chunk twice.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from httpx_sse import ServerSentEvent, connect_sse

from sluice.client.credentials import (
    CredentialCache,
    Slot,
    StreamCredentials,
)
from sluice.client.errors import ApiConnectionError, AuthenticationError
from sluice.client.transport import RetryOptions, Transport, decode, retry_delay

NDJSON = "application/x-ndjson"
CURSOR_HEADER = "x-stream-cursor"
# A token this close to expiry is re-minted before use: longer than any append with its retries.
DEFAULT_REFRESH_MARGIN_S = 300.0


@dataclass(frozen=True)
class StreamMessage:
    """One chunk as a reader receives it: its entry id (resumable) and its value."""

    id: str
    data: Any


def stream_path(run_id: str, key: str) -> str:
    return f"/realtime/v1/streams/{quote(run_id, safe='')}/{quote(key, safe='')}"


def run_slot(run_id: str, key: str) -> Slot:
    return ("run", run_id, key)


def channel_path(session_id: str, io: str) -> str:
    return f"/realtime/v1/sessions/{quote(session_id, safe='')}/{quote(io, safe='')}"


def slot_path(slot: Slot) -> str:
    """Where a slot's stream is minted and read: a run's stream, or a session's channel."""
    scope, owner, key = slot
    return channel_path(owner, key) if scope == "session" else stream_path(owner, key)


def ndjson_chunks(chunks: Iterable[Any]) -> bytes:
    return b"".join(json.dumps({"data": c}).encode() + b"\n" for c in chunks)


def action_url(credentials: StreamCredentials, action: str) -> str:
    """``.../append`` or ``.../close`` of the stream the credentials are for."""
    return credentials.append_url.removesuffix("/append") + "/" + action


def append_headers(credentials: StreamCredentials, content_type: str, part_id: str | None) -> dict[str, str]:
    headers = {"authorization": f"Bearer {credentials.token}", "content-type": content_type}
    if part_id:
        headers["x-part-id"] = part_id
    return headers


def new_part_id() -> str:
    return uuid.uuid4().hex


class StreamWriter:
    """Writes one run stream with the slot's cached credentials."""

    def __init__(self, streams: Streams, slot: Slot) -> None:
        self._streams = streams
        self.slot = slot

    def append(self, chunk: Any, part_id: str | None = None) -> list[str]:
        """Append one chunk; the entry ids."""
        body = json.dumps(chunk).encode()
        return self._send("append", body, "application/json", part_id or new_part_id())

    def append_many(self, chunks: Iterable[Any], part_id: str | None = None) -> list[str]:
        """Append chunks atomically, in order, in one request."""
        return self._send("append", ndjson_chunks(chunks), NDJSON, part_id or new_part_id())

    def close(self) -> None:
        """End the stream: readers get ``event: end``, later appends are refused."""
        self._send("close", b"", "application/json", None)

    def _send(self, action: str, body: bytes, content_type: str, part_id: str | None) -> list[str]:
        cache = self._streams.cache
        for attempt in (1, 2):
            entry = cache.get(self.slot)
            credentials = entry.result()
            url = (
                credentials.append_url
                if action == "append"
                else credentials.append_url[: -len("append")] + action
            )
            headers = append_headers(credentials, content_type, part_id)
            try:
                response = self._streams.transport.request("POST", url, content=body, headers=headers)
            except (AuthenticationError, ApiConnectionError):
                # Stale or revoked credentials, or a writer that lost its connection: evict only our
                # entry (a concurrent writer may have minted a fresh one) and try once more.
                cache.evict_if_same(self.slot, entry)
                if attempt == 2:
                    raise
                continue
            return list(decode(response).get("ids", []))
        raise AssertionError("unreachable")  # pragma: no cover


class Streams:
    """``client.streams``: writers, ``pipe`` and ``read`` for run streams."""

    def __init__(
        self,
        transport: Transport,
        *,
        stream_url: str | None = None,
        refresh_margin_s: float = DEFAULT_REFRESH_MARGIN_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.transport = transport
        self.stream_url = stream_url.rstrip("/") if stream_url else None
        self.cache = CredentialCache(self._mint, refresh_margin_s, clock)

    def _mint(self, slot: Slot) -> StreamCredentials:
        return StreamCredentials.from_api(self.transport.json("PUT", slot_path(slot)))

    def credentials(self, run_id: str, key: str) -> StreamCredentials:
        """The slot's credentials (minted on first use, then cached)."""
        return self.cache.get(run_slot(run_id, key)).result()

    def writer(self, run_id: str, key: str) -> StreamWriter:
        return self.writer_for(run_slot(run_id, key))

    def writer_for(self, slot: Slot) -> StreamWriter:
        """A writer of any slot (a session channel: ``("session", session_id, io)``)."""
        return StreamWriter(self, slot)

    def pipe(self, run_id: str, key: str, source: Iterable[Any], *, close: bool = False) -> int:
        """Append every chunk of ``source`` in order; how many. ``close`` ends the stream after."""
        writer = self.writer(run_id, key)
        count = 0
        for chunk in source:
            writer.append(chunk)
            count += 1
        if close:
            writer.close()
        return count

    def reset(self) -> None:
        """Forget every cached credential."""
        self.cache.reset()

    def read(
        self,
        run_id: str,
        key: str,
        last_event_id: str | None = None,
        *,
        retry: RetryOptions | None = None,
    ) -> Iterator[StreamMessage]:
        """The stream's chunks from ``last_event_id`` (else from now) until it is closed, across
        reconnects with no gap and no duplicate: each reconnect resumes after the last id seen.

        Raises:
            ApiError: the read was refused (401, 404, ...).
            ApiConnectionError: the reader could not reconnect after ``retry.max_attempts``.
        """
        return self.read_slot(run_slot(run_id, key), last_event_id, retry=retry)

    def read_slot(
        self, slot: Slot, last_event_id: str | None = None, *, retry: RetryOptions | None = None
    ) -> Iterator[StreamMessage]:
        """``read`` for any slot (a session channel: ``("session", session_id, io)``)."""
        options = retry or self.transport.retry
        base = self.stream_url or str(self.transport.http.base_url).rstrip("/")
        url = base + slot_path(slot)
        cursor = last_event_id
        failures = 0
        while True:
            headers = {"last-event-id": cursor} if cursor else {}
            try:
                with connect_sse(self.transport.http, "GET", url, headers=headers) as source:
                    response = source.response
                    if not response.is_success:
                        response.read()
                        failures += 1
                        time.sleep(retry_delay(options, failures, f"GET {url}", response))
                        continue
                    # Where the server's snapshot put a fresh reader: resuming from it keeps a
                    # reconnect before the first event from skipping what arrived in between.
                    cursor = cursor or response.headers.get(CURSOR_HEADER)
                    for sse in source.iter_sse():
                        if sse.event == "end":
                            return
                        if message := to_message(sse):
                            cursor, failures = message.id, 0
                            yield message
            except httpx.TransportError as exc:
                failures += 1
                time.sleep(retry_delay(options, failures, f"GET {url}", error=exc))


def to_message(sse: ServerSentEvent) -> StreamMessage | None:
    """A data event as a message; None for anything else. A ``retry:`` frame has no data (the
    parser still reports the last id on it); keep-alives are comments, which it drops."""
    if sse.event != "message" or not sse.data or not sse.id:
        return None
    return StreamMessage(sse.id, json.loads(sse.data))
