"""SQS event sources with partial batch responses, the same way in every function.

Powertools' ``BatchProcessor`` reports each failed record as a batch item failure; a batch whose
every record failed is answered like any other (every id listed) rather than raised, so devstack
and Lambda see the same response and an outage is not an invocation error.

Powertools handles records one after another (or with asyncio); the functions here wait on
DynamoDB, S3 and Redis, so ``ConcurrentBatchProcessor`` handles up to
``SLUICE_SQS_RECORD_CONCURRENCY`` records on threads (boto3 and redis-py release the GIL while
they wait). Each record still succeeds or fails on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from sluice.config import get_settings


class ConcurrentBatchProcessor(BatchProcessor):
    def __init__(self, concurrency: int) -> None:
        super().__init__(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        self.concurrency = concurrency

    def process(self) -> list[tuple[Any, ...]]:
        if self.concurrency <= 1 or len(self.records) <= 1:
            return super().process()
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(self.records))) as pool:
            return list(pool.map(self._process_record, self.records))


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
