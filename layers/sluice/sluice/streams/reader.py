"""The one reader core, and the ways it is served: long poll and streamed (SSE), and drained
(the records as far as they go now, as JSON, for readers that must not wait).

The cursor is a concrete entry id from the first moment, fixed when the reader is made, before
the response sends anything: ``Last-Event-ID`` when the client resumes; else the start of the
stream (``0-0``, as the reference platform and its SDK read), skipping as many chunks as an
integer ``Last-Event-ID`` says (the trigger.dev SDK's ``startIndex``); or, with ``from=latest``,
the tail snapshotted once (``XREVRANGE + - COUNT 1``). Later reads only ever start after the last
id read. Re-reading ``$`` instead would skip every entry added between two reads (seed 004).

Frames: a data event carries ``id:`` (its entry id) and the chunk as JSON in ``data:``; the end of
the stream is ``event: end`` (no id, so a resuming client keeps its place before it); keep-alives
are comments; every response that ends before the stream does ends with ``retry:``. A response to
a reader without ``Last-Event-ID`` opens with ``id: <cursor>`` and no data (``cursor_frame``).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import anyio.to_thread
from sse_starlette import ServerSentEvent

from sluice import observability
from sluice.config import get_settings
from sluice.errors import BadRequest
from sluice.streams.framing import SLUICE, Framing
from sluice.streams.models import START_ID, RecordsAnswer, StreamAddress, StreamEvent, StreamRecord
from sluice.streams.store import StreamStore

# A Redis stream entry id, ``<ms>-<seq>``. Redis holds each part in 64 bits and refuses a larger
# one; 19 digits always fit (and ids Redis makes are far shorter), and a regex can say it, so the
# documented pattern and the check are the same rule.
ENTRY_ID_PATTERN = r"^\d{1,19}-\d{1,19}$"
_ENTRY_ID = re.compile(ENTRY_ID_PATTERN)
KEEP_ALIVE = ServerSentEvent(comment="keep-alive")
# A response header: the cursor the reader started from, so a client that connected without
# Last-Event-ID can resume from it even if the response ended before any event.
CURSOR_HEADER = "x-stream-cursor"
# What one drained read answers at most: this many records, and this many bytes of chunks, so the
# reply stays under Lambda's 6 MB response limit even for chunks of SLUICE_STREAM_CHUNK_MAX_BYTES.
RECORDS_MAX = 1000
RECORDS_MAX_BYTES = 4 * 1024 * 1024


# A count of chunks to skip: the trigger.dev SDK's ``startIndex`` - 1, sent as Last-Event-ID.
_CHUNK_COUNT = re.compile(r"[0-9]{1,15}")
LATEST = "latest"
# The trigger.dev SDK's way of saying ``from=latest``.
START_HEADER = "x-trigger-stream-start"


@dataclass(frozen=True)
class Start:
    """Where a read starts when the client names no entry: the stream's start, skipping ``skip``
    chunks, or its tail (``latest``)."""

    skip: int = 0
    latest: bool = False


def parse_start(last_event_id: str | None, start: str | None) -> str | Start:
    """Where a read starts: after the entry ``Last-Event-ID`` names, after as many chunks as an
    integer ``Last-Event-ID`` counts, at the tail when ``start`` (``?from=``, the SDK's
    ``X-Trigger-Stream-Start``) is ``latest``, else at the beginning.

    Raises:
        BadRequest: ``invalid_last_event_id``: neither an entry id nor a count.
    """
    value = (last_event_id or "").strip()
    if _CHUNK_COUNT.fullmatch(value):
        return Start(skip=int(value))
    if entry_id := parse_last_event_id(value):
        return entry_id
    return Start(latest=(start or "").strip().lower() == LATEST)


def parse_last_event_id(value: str | None) -> str | None:
    """A client's ``Last-Event-ID``; None when absent.

    Raises:
        BadRequest: not a stream entry id (``<ms>-<seq>``).
    """
    if value is None or value.strip() == "":
        return None
    value = value.strip()
    if not _ENTRY_ID.fullmatch(value):
        raise BadRequest(
            "Last-Event-ID must be a stream entry id such as 1700000000000-0", code="invalid_last_event_id"
        )
    return value


class StreamReader:
    """One client's read of one stream; owns the cursor."""

    def __init__(self, store: StreamStore, address: StreamAddress, start: str | Start | None = None) -> None:
        """``start``: an entry id to read after, or a ``Start`` (None: the beginning)."""
        self.store = store
        self.address = address
        self.ended = False
        self._pending: list[StreamEvent] = []
        self._skip = 0
        if isinstance(start, str):
            self.cursor = start
        elif start is not None and start.latest:
            tail = store.tail(address)
            self.cursor = tail.id if tail else START_ID
            if tail is not None and tail.end:
                self._pending.append(tail)  # closed already: tell the reader so at once
        else:
            self.cursor = START_ID
            self._skip = start.skip if start is not None else 0
        self.start_cursor = self.cursor
        # The cursor came from the snapshot, which only the response can tell the client (a
        # closed stream's reader hears the end at once: nothing to resume).
        # (From the beginning a reconnect without Last-Event-ID starts where this one did.)
        latest = isinstance(start, Start) and start.latest
        self.snapshotted = latest and not self._pending

    def poll(self, block_ms: int | None) -> list[StreamEvent]:
        """The next events after the cursor (waiting up to ``block_ms`` for one), up to the end."""
        if self.ended:
            return []
        events, self._pending = self._pending, []
        if not events:
            events = self.store.read_after(self.address, self.cursor, block_ms=block_ms)
        for i, event in enumerate(events):
            if event.end:
                self.ended = True
                events = events[: i + 1]
                break
        if events:
            self.cursor = events[-1].id
        while self._skip and events and not events[0].end:
            self._skip -= 1
            events = events[1:]
        return events


def cursor_frame(reader: StreamReader) -> list[ServerSentEvent]:
    """``id: <start cursor>`` with no data, first in a response to a reader without Last-Event-ID:
    EventSource takes the id as its Last-Event-ID without firing an event, so a browser that
    reconnects before the first event (a long poll that answered a keep-alive, a cut connection)
    resumes from the snapshot instead of a new tail, losing nothing written in between. (A
    client that reads headers has X-Stream-Cursor; EventSource cannot read them.)"""
    return [ServerSentEvent(id=reader.start_cursor)] if reader.snapshotted else []


def retry_frame(retry_ms: int | None = None) -> ServerSentEvent:
    return ServerSentEvent(retry=get_settings().sse_retry_ms if retry_ms is None else retry_ms)


def long_poll(
    reader: StreamReader, clock: Callable[[], float] = time.monotonic, framing: Framing = SLUICE
) -> list[ServerSentEvent]:
    """One long-poll response: what arrived until SLUICE_SSE_LINGER_MS after the first event, or
    a keep-alive after SLUICE_SSE_WINDOW_S with none; then, unless the stream ended, ``retry:``
    (SLUICE_SSE_LONG_POLL_RETRY_MS), or the trigger.dev SDK's ``framing.cut``."""
    settings = get_settings()
    observability.count_now("StreamConnections", transport="long_poll")
    start = clock()
    deadline = start + settings.sse_window_s
    events: list[StreamEvent] = []
    first_at: float | None = None
    while not reader.ended:
        now = clock()
        until = deadline if first_at is None else min(deadline, first_at + settings.sse_linger_ms / 1000)
        if now >= until:
            break
        batch = reader.poll(block_ms=max(1, min(settings.sse_block_ms, int((until - now) * 1000))))
        if batch and first_at is None:
            first_at = clock()
        events.extend(batch)
    sluice = framing is SLUICE
    frames = (cursor_frame(reader) if sluice else []) + (framing.frames(events) or [KEEP_ALIVE])
    if not reader.ended:
        frames.append(retry_frame(settings.sse_long_poll_retry_ms) if sluice else framing.cut())
    return frames


async def stream(
    reader: StreamReader, clock: Callable[[], float] = time.monotonic, framing: Framing = SLUICE
) -> AsyncIterator[ServerSentEvent]:
    """A streamed response: events as they arrive, and after SLUICE_SSE_MAX_CONNECTION_S a
    ``framing.cut`` (``retry:``) so the client reconnects with Last-Event-ID. (Keep-alives while
    idle come from sse-starlette's ping, sent as KEEP_ALIVE.)"""
    settings = get_settings()
    observability.count_now("StreamConnections", transport="streamed")
    start = clock()
    for opening in cursor_frame(reader) if framing is SLUICE else []:
        yield opening
    while not reader.ended:
        if clock() - start >= settings.sse_max_connection_s:
            yield framing.cut()
            return
        # The blocking XREAD runs in a worker thread so the event loop keeps serving other readers.
        for event in await anyio.to_thread.run_sync(reader.poll, settings.sse_block_ms):
            if (frame := framing.frame(event)) is not None:
                yield frame


def drain(reader: StreamReader) -> RecordsAnswer:
    """The records after the reader's cursor as far as they go now: it never waits. A page holds
    at least one record and at most RECORDS_MAX, or RECORDS_MAX_BYTES of chunks; ``hasMore`` says
    that more are there (ask again after the last id)."""
    found: list[StreamRecord] = []
    size = 0
    while events := reader.poll(block_ms=None):
        for event in events:
            if event.end:
                continue
            size += len(json.dumps(event.data, separators=(",", ":")))
            if found and (len(found) >= RECORDS_MAX or size > RECORDS_MAX_BYTES):
                return RecordsAnswer(records=found, closed=False, hasMore=True)
            found.append(StreamRecord(id=event.id, data=event.data))
    return RecordsAnswer(records=found, closed=reader.ended, hasMore=False)
