"""Realtime streams from the SDK: writers that mint once per slot, and a reader that resumes.

    writer = client.streams.writer(run_id, "ai")
    writer.append({"delta": "Hel"})
    writer.append_many([{"delta": "lo"}, {"delta": "!"}])
    writer.close()
    for message in client.streams.read(run_id, "ai"):
        print(message.id, message.data)

Every append carries a part id, so the transport's own retries (and a retry after re-minting)
never land a chunk twice. ``streams_async`` is the asyncio flavour; what both do is decided in
``stream_calls``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
from httpx_sse import connect_sse

from sluice_client.credentials import CredentialCache, Slot, StreamCredentials
from sluice_client.stream_calls import (
    DEFAULT_REFRESH_MARGIN_S,
    END_EVENT,
    ReadCursor,
    StreamMessage,
    WriteCall,
    channel_path,
    entry_ids,
    run_slot,
    slot_path,
    write_attempts,
)
from sluice_client.transport import RetryOptions, Transport

__all__ = ["StreamMessage", "StreamWriter", "Streams", "channel_path"]


class StreamWriter:
    """Writes one slot's stream with the slot's cached credentials."""

    def __init__(self, streams: Streams, slot: Slot) -> None:
        self._streams = streams
        self.slot = slot

    def append(self, chunk: Any, part_id: str | None = None) -> list[str]:
        """Append one chunk; the entry ids."""
        return self._send(WriteCall.append(chunk, part_id))

    def append_many(self, chunks: Iterable[Any], part_id: str | None = None) -> list[str]:
        """Append chunks atomically, in order, in one request."""
        return self._send(WriteCall.append_many(chunks, part_id))

    def close(self) -> None:
        """End the stream: readers get ``event: end``, later appends are refused."""
        self._send(WriteCall.close())

    def _send(self, call: WriteCall) -> list[str]:
        for attempt in write_attempts(self._streams.cache, self.slot):
            credentials = attempt.entry.result()
            with attempt:
                url, headers = call.url(credentials), call.headers(credentials)
                response = self._streams.transport.request("POST", url, content=call.body, headers=headers)
                return entry_ids(response)
        raise AssertionError("unreachable")  # pragma: no cover: the last attempt raises


class Streams:
    """``client.streams``: writers, ``pipe``, ``read`` and ``records`` for run streams."""

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
        ``0-0`` reads from the start.

        Raises:
            ApiError: the read was refused (401, 404, ...).
            ApiConnectionError: the reader could not reconnect after ``retry.max_attempts``.
        """
        return self.read_slot(run_slot(run_id, key), last_event_id, retry=retry)

    def read_slot(
        self, slot: Slot, last_event_id: str | None = None, *, retry: RetryOptions | None = None
    ) -> Iterator[StreamMessage]:
        """``read`` for any slot (a session channel: ``("session", session_id, io)``)."""
        base = self.stream_url or str(self.transport.http.base_url).rstrip("/")
        cursor = ReadCursor(base + slot_path(slot), retry or self.transport.retry, last_event_id)
        while True:
            try:
                with connect_sse(self.transport.http, "GET", cursor.url, headers=cursor.headers()) as source:
                    if not source.response.is_success:
                        source.response.read()
                        self.transport.sleep(cursor.refused(source.response))
                        continue
                    cursor.opened(source.response)
                    for sse in source.iter_sse():
                        if sse.event == END_EVENT:
                            return
                        if message := cursor.message(sse):
                            yield message
            except httpx.TransportError as exc:
                self.transport.sleep(cursor.lost(exc))

    def records(self, run_id: str, key: str, after: str | None = None) -> Iterator[StreamMessage]:
        """The stream's chunks after ``after`` (from the start when None) as far as they go now: it
        never waits (the HTTP API's drained read, page by page).

        Raises:
            ApiError: the read was refused (401, 404, ...).
            ApiConnectionError: the API could not be reached.
        """
        return self.records_slot(run_slot(run_id, key), after)

    def records_slot(self, slot: Slot, after: str | None = None) -> Iterator[StreamMessage]:
        """``records`` for any slot."""
        cursor = after
        while True:
            query = f"?{urlencode({'after': cursor})}" if cursor else ""
            page = self.transport.json("GET", f"{slot_path(slot)}/records{query}")
            for record in page["records"]:
                cursor = record["id"]
                yield StreamMessage(record["id"], record["data"])
            if not page["hasMore"] or not page["records"]:  # an empty page would be asked for again
                return
