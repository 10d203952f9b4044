"""Messages sent together go in SendMessageBatch calls that fit SQS's limits."""

from __future__ import annotations

from sluice.sqs_send import SEND_BATCH, SEND_BATCH_BYTES, send_chunks


def test_sends_are_chunked_by_count_and_by_size() -> None:
    assert list(send_chunks(["x"] * (SEND_BATCH + 2))) == [list(range(SEND_BATCH)), [10, 11]]
    big = "x" * (SEND_BATCH_BYTES // 2 - 10)
    assert list(send_chunks([big, big, big, "y"])) == [[0, 1], [2, 3]]
    assert list(send_chunks(["x" * SEND_BATCH_BYTES, "y"])) == [[0], [1]]
