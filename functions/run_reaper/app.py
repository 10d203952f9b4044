"""The run reaper, on a schedule: lapsed leases become a retry or FAILED (WORKER_LOST)."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from sluice.api import logger
from sluice.engine import lifecycle


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    return lifecycle.reap()
