"""The asyncio flavour of ``sluice_client.streams``: the same writers and reader on
``httpx.AsyncClient``, with a credential cache whose in-flight mints are asyncio Tasks. What a
write or a read does is decided in ``stream_calls``, shared with the sync flavour.

    async with AsyncStreams(api_url, api_key) as streams:
        writer = streams.writer(run_id, "ai")
        await writer.append({"delta": "Hi"})
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from sluice_client.credentials import AsyncCredentialCache, Slot, StreamCredentials
from sluice_client.stream_calls import (
    DEFAULT_REFRESH_MARGIN_S,
    END_EVENT,
    ReadCursor,
    StreamMessage,
    WriteCall,
    entry_ids,
    run_slot,
    slot_path,
    write_attempts,
)
from sluice_client.transport import AsyncTransport, RetryOptions, decode


class AsyncStreamWriter:
    def __init__(self, streams: AsyncStreams, slot: Slot) -> None:
        self._streams = streams
        self.slot = slot

    async def append(self, chunk: Any, part_id: str | None = None) -> list[str]:
        return await self._send(WriteCall.append(chunk, part_id))

    async def append_many(self, chunks: Iterable[Any], part_id: str | None = None) -> list[str]:
        return await self._send(WriteCall.append_many(chunks, part_id))

    async def close(self) -> None:
        await self._send(WriteCall.close())

    async def _send(self, call: WriteCall) -> list[str]:
        for attempt in write_attempts(self._streams.cache, self.slot):
            credentials = await attempt.entry
            with attempt:
                url, headers = call.url(credentials), call.headers(credentials)
                transport = self._streams.transport
                response = await transport.request("POST", url, content=call.body, headers=headers)
                return entry_ids(response)
        raise AssertionError("unreachable")  # pragma: no cover: the last attempt raises


class AsyncStreams:
    """Run streams for asyncio code: ``writer``, ``pipe``, ``read``, ``reset``."""

    def __init__(
        self,
        api_url: str,
        api_key: str,
        *,
        stream_url: str | None = None,
        retry: RetryOptions | None = None,
        timeout_s: float = 30.0,
        refresh_margin_s: float = DEFAULT_REFRESH_MARGIN_S,
        clock: Callable[[], float] = time.time,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.transport = AsyncTransport(api_url, api_key, retry=retry, timeout_s=timeout_s, http=http)
        self.stream_url = stream_url.rstrip("/") if stream_url else None
        self.cache = AsyncCredentialCache(self._mint, refresh_margin_s, clock)

    async def __aenter__(self) -> AsyncStreams:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.transport.aclose()

    async def _mint(self, slot: Slot) -> StreamCredentials:
        return StreamCredentials.from_api(decode(await self.transport.request("PUT", slot_path(slot))))

    async def credentials(self, run_id: str, key: str) -> StreamCredentials:
        return await self.cache.get(run_slot(run_id, key))

    def writer(self, run_id: str, key: str) -> AsyncStreamWriter:
        return AsyncStreamWriter(self, run_slot(run_id, key))

    async def pipe(
        self, run_id: str, key: str, source: AsyncIterable[Any] | Iterable[Any], *, close: bool = False
    ) -> int:
        """Append every chunk of ``source`` (sync or async iterable) in order; how many."""
        writer = self.writer(run_id, key)
        count = 0
        if isinstance(source, AsyncIterable):
            async for chunk in source:
                await writer.append(chunk)
                count += 1
        else:
            for chunk in source:
                await writer.append(chunk)
                count += 1
        if close:
            await writer.close()
        return count

    def reset(self) -> None:
        self.cache.reset()

    async def read(
        self, run_id: str, key: str, last_event_id: str | None = None
    ) -> AsyncIterator[StreamMessage]:
        """As ``Streams.read``: every chunk once, in order, across reconnects."""
        http, sleep = self.transport.http, self.transport.sleep
        base = self.stream_url or str(http.base_url).rstrip("/")
        cursor = ReadCursor(base + slot_path(run_slot(run_id, key)), self.transport.retry, last_event_id)
        while True:
            try:
                async with aconnect_sse(http, "GET", cursor.url, headers=cursor.headers()) as source:
                    if not source.response.is_success:
                        await source.response.aread()
                        await sleep(cursor.refused(source.response))
                        continue
                    cursor.opened(source.response)
                    async for sse in source.aiter_sse():
                        if sse.event == END_EVENT:
                            return
                        if message := cursor.message(sse):
                            yield message
            except httpx.TransportError as exc:
                await sleep(cursor.lost(exc))
