"""Phase 2 over HTTP: check the media type and feed the request body to the parser lazily.

A Lambda behind API Gateway receives the whole body in its event (at most 6 MB, less once
API Gateway base64-encodes an NDJSON body), so the body is in memory already; what stays bounded is
everything after it: the parser holds at most one item, and only ``concurrency`` items are in
flight. Bodies larger than a request can carry go through a staged upload instead.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from sluice.batches.ndjson import NdjsonParser, Parsed
from sluice.config import get_settings
from sluice.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

# Raw bytes count as NDJSON too: code generators skip a body of a media type they do not know, so
# openapi.json offers application/octet-stream beside NDJSON for generated clients to keep the route.
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/octet-stream")
# The size of the slices the body is fed to the parser in: large enough that per-chunk overhead
# vanishes, small enough that an oversized line is cut off soon after it passes the limit.
CHUNK_BYTES = 64 * 1024


def require_ndjson(headers: Mapping[str, str] | None) -> None:
    content_type = next((v for k, v in (headers or {}).items() if k.lower() == "content-type"), "")
    if not any(t in content_type.lower() for t in NDJSON_TYPES):
        raise UnsupportedMediaType(
            "Content-Type must be application/x-ndjson or application/octet-stream "
            f"(got {content_type or 'none'})",
            code="unsupported_media_type",
        )


def parse_body(data: bytes) -> Iterator[Parsed]:
    """The body's items, parsed one chunk at a time as the consumer pulls them.

    Raises:
        BadRequest: the body is empty (at once, not when the items are pulled).
        PayloadTooLarge: ``too_many_lines``, over ``SLUICE_BATCH_REQUEST_MAX_LINES`` (at once:
            nothing of the request is read).
    """
    if not data:
        raise BadRequest("Request body is required", code="empty_body")
    limit = get_settings().batch_request_max_lines
    # A count of line breaks is a quick upper bound; only a body near the limit is counted exactly.
    if data.count(b"\n") >= limit and sum(1 for line in data.splitlines() if line.strip()) > limit:
        raise PayloadTooLarge(
            f"A batch-items request holds at most {limit} lines (SLUICE_BATCH_REQUEST_MAX_LINES); split "
            "the items over several requests (repeats are deduplicated) or stage them",
            code="too_many_lines",
        )
    return _parse(data)


def _parse(data: bytes) -> Iterator[Parsed]:
    parser = NdjsonParser(get_settings().batch_item_max_bytes)
    for start in range(0, len(data), CHUNK_BYTES):
        yield from parser.feed(data[start : start + CHUNK_BYTES])
    yield from parser.finish()


# Every request of the trigger.dev SDK names its version in this header.
TRIGGER_DEV_SDK_HEADER = "trigger-version"


def answer_out_of_time(
    headers: Mapping[str, str] | None, status: Mapping[str, object]
) -> dict[str, object] | None:
    """The trigger.dev SDK's answer to a phase 2 that ran out of time (``time_budget_exceeded``),
    or None for other clients (they get the 413). The SDK does not retry a 413; the reference's
    protocol for "not all items are in" is ``200 {"sealed": false, "enqueuedCount",
    "expectedCount"}``, on which it streams the items again (those queued are deduplicated), so
    a batch too large for one request's time completes over several. ``status`` is the batch's
    (``get_status``)."""
    if not any(k.lower() == TRIGGER_DEV_SDK_HEADER for k in headers or {}):
        return None
    return {
        "id": status["id"],
        "itemsAccepted": 0,
        "itemsDeduplicated": 0,
        "sealed": False,
        "enqueuedCount": status["enqueuedCount"],
        "expectedCount": status["runCount"],
        "runCount": status["runCount"],
    }
