"""Realtime streams as the trigger.dev SDK uses them: a task's ``streams.pipe`` and
``streams.append`` (through ``StandardRealtimeStreamsManager``) and ``streams.read``."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from tests.compat.conftest import CompatTenant

pytestmark = [pytest.mark.compat, pytest.mark.devstack]

CHUNKS: list[Any] = [{"type": "text", "delta": f"part {n}"} for n in range(6)] + ["done", 7, None]


def running_run(compat: CompatTenant) -> str:
    # A run nobody executes stays QUEUED: its streams are open.
    run_id: str = compat.sdk("tasks.trigger", "compat-stream", {"n": 1}, {"delay": "1h"})["id"]
    return run_id


def test_chunks_a_task_pipes_are_read_whole_and_in_order(compat: CompatTenant) -> None:
    run_id = running_run(compat)
    assert compat.sdk("worker.pipe", run_id, "out", CHUNKS) == len(CHUNKS)
    # A read after the writes starts at the beginning, and ends where the stream ends.
    assert compat.sdk("streams.read", run_id, "out") == CHUNKS
    # Sluice's own reader sees the same chunks.
    records = compat.client.streams.records(run_id, "out")
    assert [m.data for m in records] == CHUNKS


def test_start_index_skips_that_many_chunks(compat: CompatTenant) -> None:
    run_id = running_run(compat)
    compat.sdk("worker.pipe", run_id, "out", CHUNKS)
    # startIndex is 1-based: the 4th chunk first.
    assert compat.sdk("streams.read", run_id, "out", {"startIndex": 4}) == CHUNKS[3:]


def test_a_read_across_long_poll_windows_gets_every_chunk_once(compat: CompatTenant) -> None:
    """Chunks land a second apart: each long-poll response ends soon after its first chunk
    (SLUICE_SSE_LINGER_MS), before the stream does, and the SDK must reconnect from its cursor
    rather than take that for the end. The last write, a pipe, closes the stream."""
    run_id = running_run(compat)
    appended = [f"line {n}" for n in range(3)]

    def write() -> None:
        for text in appended:
            time.sleep(1)
            compat.sdk("worker.append", run_id, "slow", text)
        compat.sdk("worker.pipe", run_id, "slow", ["last"])

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    assert compat.sdk("streams.read", run_id, "slow") == [*appended, "last"]
    writer.join(60)


def test_append_adds_one_chunk(compat: CompatTenant) -> None:
    run_id = running_run(compat)
    compat.sdk("worker.append", run_id, "log", "first line")
    compat.sdk("worker.append", run_id, "log", "second line")
    records = compat.client.streams.records(run_id, "log")
    assert [m.data for m in records] == ["first line", "second line"]
