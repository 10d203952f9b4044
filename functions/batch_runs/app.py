"""batch_runs: BatchItemQueue -> one run per item, the batch's items at once (partial batch responses)."""

import json
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from sluice import batches, observability
from sluice.sqs_batch import process_sqs_batch


def record_handler(record: SQSRecord) -> str:
    return batches.process_message(json.loads(record.body))


@observability.lambda_handler()
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_sqs_batch(event, context, record_handler, concurrent=True)
