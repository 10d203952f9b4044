"""The seal-timeout reaper, on a schedule: aborts batches never sealed in time."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from sluice import batches, observability


@observability.lambda_handler()
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    return {"aborted": batches.reap()}
