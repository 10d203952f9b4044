"""How a read's events are written on the wire: Sluice's SSE frames, or the trigger.dev SDK's.

Sluice's: a chunk is ``id: <entry id>`` + ``data: <JSON>``; the stream's end is ``event: end``;
a response that ends first ends with ``retry:``, and EventSource resumes with Last-Event-ID.

The SDK's (it asks with ``x-trigger-realtime-streams-version: v2``; the answer says
``X-Stream-Version: v2``): a chunk is an ``event: batch`` of one record, ``{"seq_num", "body":
"{\\"data\\", \\"id\\"}", "timestamp", "headers"}``, whose ``seq_num`` (the entry id here) the SDK
keeps as its cursor. The SDK takes the end of a response body for the end of the stream, and
yields every other event as a chunk, so the stream's end is the body's end with no frame of its
own, and a response that ends before the stream does (a long poll's window, a streamed
connection's cap) ends with ``event: error``, on which the SDK reconnects from its cursor.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sse_starlette import ServerSentEvent

from sluice.config import get_settings
from sluice.streams.models import StreamEvent

# The request header the SDK names its dialect with, and the response header that answers it.
SDK_VERSION_HEADER = "x-trigger-realtime-streams-version"
STREAM_VERSION_HEADER = "x-stream-version"
SDK_DIALECT = "v2"


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


@dataclass(frozen=True)
class Framing:
    chunk: Callable[[StreamEvent], ServerSentEvent]
    # The frame that says the stream ended; None where the body's end says it.
    end: ServerSentEvent | None
    # The last frame of a response that ends before the stream does.
    cut: Callable[[], ServerSentEvent]
    headers: Mapping[str, str] = field(default_factory=dict)

    def frames(self, events: list[StreamEvent]) -> list[ServerSentEvent]:
        return [f for f in (self.frame(e) for e in events) if f is not None]

    def frame(self, event: StreamEvent) -> ServerSentEvent | None:
        return self.end if event.end else self.chunk(event)


def _sluice_chunk(event: StreamEvent) -> ServerSentEvent:
    return ServerSentEvent(data=_compact(event.data), id=event.id)


def _sdk_chunk(event: StreamEvent) -> ServerSentEvent:
    record = {
        "seq_num": event.id,
        "body": _compact({"data": event.data, "id": event.id}),
        "timestamp": int(event.id.split("-", 1)[0]),
        "headers": [],
    }
    return ServerSentEvent(data=_compact({"records": [record]}), event="batch")


SLUICE = Framing(
    chunk=_sluice_chunk,
    end=ServerSentEvent(data="", event="end"),
    cut=lambda: ServerSentEvent(retry=get_settings().sse_retry_ms),
)
SDK = Framing(
    chunk=_sdk_chunk,
    end=None,
    cut=lambda: ServerSentEvent(data="the response ended before the stream; reconnect", event="error"),
    headers={STREAM_VERSION_HEADER: SDK_DIALECT},
)


def for_request(headers: Mapping[str, str]) -> Framing:
    """The SDK's framing when the request asks for it (header names lower-cased), else Sluice's."""
    return SDK if headers.get(SDK_VERSION_HEADER, "").strip().lower() == SDK_DIALECT else SLUICE
