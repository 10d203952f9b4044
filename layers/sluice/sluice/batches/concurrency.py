"""Bounded-concurrency map over a lazily pulled iterator (the reference's ``pMap``).

Threads, not asyncio: every call an item makes (boto3 to S3 and SQS, redis-py) is blocking and
releases the GIL while it waits on the network, and boto3 clients and redis-py pools are
thread-safe. An asyncio version would need async twins of both libraries, or would hand each call
to a thread pool anyway.

The next item is pulled from the source only when a slot is free, so at most ``concurrency``
items exist outside the source at once: peak memory is about concurrency x the largest item, and
a source that reads from a request body or an S3 stream is read no faster than items complete.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ThreadPoolExecutor, wait
from contextlib import ExitStack
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def bounded_map(
    items: Iterable[T], work: Callable[[T], R], concurrency: int, pool: Executor | None = None
) -> Iterator[R]:
    """Yield ``work(item)`` for every item, in completion order, with at most ``concurrency``
    calls in flight (1 runs them one after another on the calling thread).

    ``pool``: the threads to run them on, kept by the caller for many maps (a thread costs more
    to start than a 10 ms call costs to wait for: starting one per call made batch ingest at
    concurrency 50 CPU-bound); by default, a pool of this map's own.

    The first failure, of ``work`` or of the source itself, stops the pulling; the calls already
    in flight finish (a Lambda must not leave threads working after it answers) and then that
    first error is raised.
    """
    if concurrency <= 1:
        for item in items:
            yield work(item)
        return
    with ExitStack() as stack:
        if pool is None:
            pool = stack.enter_context(
                ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="sluice-batch")
            )
        yield from _bounded(items, work, concurrency, pool)


def _bounded(items: Iterable[T], work: Callable[[T], R], concurrency: int, pool: Executor) -> Iterator[R]:
    source = iter(items)
    failure: BaseException | None = None
    exhausted = False
    in_flight: set[Future[R]] = set()
    try:
        while True:
            while failure is None and not exhausted and len(in_flight) < concurrency:
                try:
                    item = next(source)
                except StopIteration:
                    exhausted = True
                except Exception as exc:
                    failure = exc
                else:
                    in_flight.add(pool.submit(work, item))
            if not in_flight:
                break
            done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                error = future.exception()
                if error is not None:
                    failure = failure or error
                elif failure is None:
                    yield future.result()
    finally:
        # A shared pool is not shut down with this map: its calls still in flight finish here.
        wait(in_flight)
    if failure is not None:
        raise failure
