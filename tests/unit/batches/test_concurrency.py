"""bounded_map: lazy pulling, the in-flight bound, and stopping on the first failure."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from sluice.batches.concurrency import bounded_map


class Gauge:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0
        self.pulled = 0

    def work(self, item: int) -> int:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        time.sleep(0.005)
        with self.lock:
            self.now -= 1
        return item

    def source(self, n: int) -> Iterator[int]:
        for i in range(n):
            self.pulled += 1
            # Never more than `concurrency` pulled items are unfinished.
            yield i


@pytest.mark.parametrize("concurrency", [1, 3, 10])
def test_in_flight_never_exceeds_the_concurrency(concurrency: int) -> None:
    gauge = Gauge()
    assert sorted(bounded_map(gauge.source(40), gauge.work, concurrency)) == list(range(40))
    assert gauge.peak <= concurrency
    assert gauge.peak == concurrency  # and the width is actually used


def test_items_are_pulled_lazily() -> None:
    gauge = Gauge()
    results = bounded_map(gauge.source(100), gauge.work, 4)
    next(results)
    assert gauge.pulled <= 4 + 1
    results.close()


def test_sequential_runs_on_the_calling_thread() -> None:
    threads = set()

    def work(item: int) -> int:
        threads.add(threading.get_ident())
        return item

    assert list(bounded_map(range(5), work, 1)) == [0, 1, 2, 3, 4]
    assert threads == {threading.get_ident()}


def test_first_failure_stops_pulling_and_in_flight_calls_finish() -> None:
    finished: list[int] = []
    gauge = Gauge()

    def work(item: int) -> int:
        if item == 5:
            raise ValueError("item 5")
        time.sleep(0.01)
        finished.append(item)
        return item

    with pytest.raises(ValueError, match="item 5"):
        list(bounded_map(gauge.source(1000), work, 4))
    assert gauge.pulled < 20
    assert len(finished) == gauge.pulled - 1  # every pulled item but the failed one ran to its end


def test_a_failing_source_raises_after_in_flight_work_finishes() -> None:
    done: list[int] = []

    def source() -> Iterator[int]:
        yield from range(3)
        raise RuntimeError("bad line")

    def work(item: int) -> int:
        time.sleep(0.01)
        done.append(item)
        return item

    with pytest.raises(RuntimeError, match="bad line"):
        list(bounded_map(source(), work, 8))
    assert sorted(done) == [0, 1, 2]
