"""SQS event sources with partial batch responses, the same way in every function.

Powertools' ``BatchProcessor`` reports each failed record as a batch item failure; a batch whose
every record failed is answered like any other (every id listed) rather than raised, so devstack
and Lambda see the same response and an outage is not an invocation error.

Powertools handles records one after another (or with asyncio); the functions here wait on
DynamoDB, S3 and Redis, so ``ConcurrentBatchProcessor`` handles up to
``SLUICE_SQS_RECORD_CONCURRENCY`` records on threads (boto3 and redis-py release the GIL while
they wait). Each record still succeeds or fails on its own. A function whose records share work
(the drainer pops one batch of entries for all its signals) takes the whole batch in one call
instead (``process_whole_sqs_batch``), with ``run_concurrently`` for the part done per item.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from sluice.config import get_settings

T = TypeVar("T")
R = TypeVar("R")


def _map_bounded(fn: Callable[[T], R], items: Sequence[T], concurrency: int) -> list[R]:
    if concurrency <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(concurrency, len(items))) as pool:
        return list(pool.map(fn, items))


class _CallerPools(threading.local):
    """One warm pool per calling thread: a Lambda handles batch after batch, and starting ten
    threads for each one shows in its time; a pool per caller keeps concurrent callers (devstack,
    the benches' simulated drainers) from sharing one bound."""

    workers = 0
    pool: ThreadPoolExecutor | None = None

    def get(self, workers: int) -> ThreadPoolExecutor:
        if self.pool is None or self.workers != workers:
            if self.pool is not None:
                self.pool.shutdown(wait=False)
            self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sluice-batch")
            self.workers = workers
        return self.pool


_pools = _CallerPools()


def run_concurrently(fn: Callable[[T], R], items: Sequence[T]) -> list[R | Exception]:
    """``fn`` of every item on up to ``SLUICE_SQS_RECORD_CONCURRENCY`` threads, in order; an
    answer is ``fn``'s result or the exception it raised (one item's failure is its own, as a
    record handler's is its record's). ``fn`` must not call ``run_concurrently`` itself: it runs
    on the caller's pool, which it could fill with calls waiting for each other."""

    def guarded(item: T) -> R | Exception:
        try:
            return fn(item)
        except Exception as exc:
            return exc

    workers = get_settings().sqs_record_concurrency
    if workers <= 1 or len(items) <= 1:
        return [guarded(item) for item in items]
    return list(_pools.get(workers).map(guarded, items))


class ConcurrentBatchProcessor(BatchProcessor):
    def __init__(self, concurrency: int) -> None:
        super().__init__(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        self.concurrency = concurrency

    def process(self) -> list[tuple[Any, ...]]:
        return _map_bounded(self._process_record, self.records, self.concurrency)


def process_sqs_batch(
    event: dict[str, Any],
    context: LambdaContext,
    record_handler: Callable[[SQSRecord], Any],
    *,
    concurrent: bool = False,
) -> dict[str, Any]:
    """Run ``record_handler`` on every record; returns the partial batch response."""
    processor = ConcurrentBatchProcessor(get_settings().sqs_record_concurrency if concurrent else 1)
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return dict(response)


def process_whole_sqs_batch(
    event: dict[str, Any],
    context: LambdaContext,
    parse: Callable[[str], T],
    batch_handler: Callable[[list[T]], Sequence[object]],
) -> dict[str, Any]:
    """``parse`` every record's body, then ``batch_handler`` all the parsed ones in one call; it
    answers one result per item, in order, and an exception fails that item's record. A body that
    does not parse fails its own record; a ``batch_handler`` that raises fails every record it
    was given. Returns the partial batch response."""
    results: dict[str, object] = {}
    parsed: list[tuple[str, T]] = []
    for record in (SQSRecord(raw) for raw in event.get("Records", [])):
        try:
            parsed.append((record.message_id, parse(record.body)))
        except Exception as exc:  # whatever the parser raises, as BatchProcessor treats a handler
            results[record.message_id] = exc
    try:
        answers: Sequence[object] = batch_handler([item for _, item in parsed])
    except Exception as exc:
        answers = [exc] * len(parsed)
    results.update(zip((message_id for message_id, _ in parsed), answers, strict=True))

    def record_handler(record: SQSRecord) -> object:
        result = results[record.message_id]
        if isinstance(result, Exception):
            raise result
        return result

    return process_sqs_batch(event, context, record_handler)
