"""Dispatcher: RunsTable stream -> RunQueue (SendMessageBatch), with partial batch responses."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from sluice import engine, observability


@observability.lambda_handler()
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    failed = engine.dispatch_records(event.get("Records") or [])
    return {"batchItemFailures": [{"itemIdentifier": seq} for seq in failed]}
