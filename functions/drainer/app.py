"""Drainer: a DrainQueue batch -> fair pops for all its signals at once, runs created concurrently."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from sluice import mollifier, observability
from sluice.sqs_batch import process_whole_sqs_batch


@observability.lambda_handler()
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_whole_sqs_batch(
        event, context, mollifier.DrainSignal.model_validate_json, mollifier.drain_batch
    )
