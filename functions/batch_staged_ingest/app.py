"""Staged ingest: S3 ObjectCreated (through StagedIngestQueue) -> phase 2 from the object.

One message per invocation (BatchSize 1), so the invocation's whole time budget goes to one object
and what does not fit is handed on as a continuation message.
"""

import json
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from sluice import batches, observability
from sluice.sqs_batch import process_sqs_batch


@observability.lambda_handler()
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    def record_handler(record: SQSRecord) -> None:
        batches.staged.handle(json.loads(record.body), context.get_remaining_time_in_millis())

    return process_sqs_batch(event, context, record_handler)
