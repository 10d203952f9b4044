"""The realtime streams' errors, each with its HTTP status and stable code."""

from __future__ import annotations

from sluice.errors import BadRequest, Conflict, PayloadTooLarge, Unauthorized


class InvalidStreamToken(Unauthorized):
    """The write token is malformed, forged, expired, or made for another stream."""

    code = "invalid_stream_token"


class RunFinished(BadRequest):
    """Streams cannot be opened on a run that has finished."""

    code = "run_finished"


class ChunkTooLarge(PayloadTooLarge):
    code = "chunk_too_large"


class StreamClosed(Conflict):
    """The stream was closed (by its writer, or because the run finished); appends are refused."""

    code = "stream_closed"
