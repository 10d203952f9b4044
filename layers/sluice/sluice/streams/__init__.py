"""Realtime streams: runs (and, next, sessions) write chunks, readers follow them over SSE.

- ``mint`` / ``append`` / ``close`` / ``open_reader``: the HTTP routes' entry points (``service``).
- ``long_poll`` / ``stream`` / ``drain``: the ways the one reader core is served (``reader``).
- ``close_run_streams``: what the run lifecycle calls when a run finishes (``runs``);
  ``fence_run_streams`` when an attempt is retried.
- ``tokens``, ``keys``, ``store``: write tokens, Redis key layout, Redis storage.
"""

from sluice.streams.errors import ChunkTooLarge, InvalidStreamToken, RunFinished, StreamClosed
from sluice.streams.framing import Framing
from sluice.streams.framing import for_request as framing_for
from sluice.streams.models import (
    AppendAnswer,
    AppendResult,
    Chunk,
    CloseAnswer,
    Credentials,
    MintAnswer,
    RecordsAnswer,
    StreamAddress,
    StreamEvent,
)
from sluice.streams.reader import (
    CURSOR_HEADER,
    ENTRY_ID_PATTERN,
    KEEP_ALIVE,
    LATEST,
    START_HEADER,
    Start,
    StreamReader,
    drain,
    long_poll,
    parse_last_event_id,
    parse_start,
    stream,
)
from sluice.streams.runs import close_run_streams, fence_run_streams, is_final, record_stream_key, stream_keys
from sluice.streams.service import (
    STREAM_KEY_PATTERN,
    append,
    close,
    mint,
    open_reader,
    parse_chunks,
    run_stream,
)
from sluice.streams.store import StreamStore, get_store
from sluice.streams.tokens import mint_token, verify_token

__all__ = [
    "CURSOR_HEADER",
    "ENTRY_ID_PATTERN",
    "KEEP_ALIVE",
    "LATEST",
    "START_HEADER",
    "STREAM_KEY_PATTERN",
    "AppendAnswer",
    "AppendResult",
    "Chunk",
    "ChunkTooLarge",
    "CloseAnswer",
    "Credentials",
    "Framing",
    "InvalidStreamToken",
    "MintAnswer",
    "RecordsAnswer",
    "RunFinished",
    "Start",
    "StreamAddress",
    "StreamClosed",
    "StreamEvent",
    "StreamReader",
    "StreamStore",
    "append",
    "close",
    "close_run_streams",
    "drain",
    "fence_run_streams",
    "framing_for",
    "get_store",
    "is_final",
    "long_poll",
    "mint",
    "mint_token",
    "open_reader",
    "parse_chunks",
    "parse_last_event_id",
    "parse_start",
    "record_stream_key",
    "run_stream",
    "stream",
    "stream_keys",
    "verify_token",
]
