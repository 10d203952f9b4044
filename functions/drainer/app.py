"""Drainer: DrainQueue signals -> one fair pop and run creation each, with partial batch responses."""

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from sluice import mollifier
from sluice.api import logger

# A batch whose records all failed is answered like any other (every id listed) rather than raised,
# so that devstack and Lambda see the same partial-batch response.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def record_handler(record: SQSRecord) -> str:
    return mollifier.drain_signal(mollifier.DrainSignal.model_validate_json(record.body))


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
