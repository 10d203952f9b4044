"""SendMessageBatch's limits, for every sender of several messages at once."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

# SendMessageBatch takes at most 10 messages and 256 KiB in all.
SEND_BATCH = 10
SEND_BATCH_BYTES = 256 * 1024


def send_chunks(bodies: Sequence[str]) -> Iterator[list[int]]:
    """Consecutive indexes of ``bodies`` that fit one SendMessageBatch."""
    chunk: list[int] = []
    size = 0
    for i, body in enumerate(bodies):
        length = len(body.encode("utf-8"))
        if chunk and (len(chunk) == SEND_BATCH or size + length > SEND_BATCH_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(i)
        size += length
    if chunk:
        yield chunk
