"""Drainer: DrainQueue signals -> fair pops and run creation, the batch's records at once."""

from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from sluice import mollifier
from sluice.api import logger
from sluice.sqs_batch import process_sqs_batch


def record_handler(record: SQSRecord) -> str:
    return mollifier.drain_signal(mollifier.DrainSignal.model_validate_json(record.body))


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_sqs_batch(event, context, record_handler, concurrent=True)
