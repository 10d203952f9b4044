"""Drain signals: re-sent in SendMessageBatch calls that fit SQS's limits."""

from __future__ import annotations

from sluice.mollifier.signals import SEND_BATCH, SEND_BATCH_BYTES, _send_chunks


def test_resends_are_chunked_by_count_and_by_size() -> None:
    assert list(_send_chunks(["x"] * (SEND_BATCH + 2))) == [list(range(SEND_BATCH)), [10, 11]]
    big = "x" * (SEND_BATCH_BYTES // 2 - 10)
    assert list(_send_chunks([big, big, big, "y"])) == [[0, 1], [2, 3]]
    assert list(_send_chunks(["x" * SEND_BATCH_BYTES, "y"])) == [[0], [1]]
