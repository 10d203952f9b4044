"""The run reaper, on a schedule: lapsed leases become a retry or FAILED (WORKER_LOST), and runs
whose ttl passed before they started become EXPIRED; runs delayed past SQS's ceiling are sent
when they come within it."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from sluice import observability, streams
from sluice.engine import lifecycle
from sluice.sessions import realtime

# A run the reaper fails for good ends its streams, as one a worker finishes does.
lifecycle.final_listeners.append(lambda run: streams.close_run_streams(run.id))
# A retried attempt's worker may still be alive: its stream writes are refused from now on.
lifecycle.retry_listeners.append(lambda run: streams.fence_run_streams(run.id, run.attempt + 1))
# A session's run that ends an attempt (any way) can no longer write the session's out channel.
lifecycle.final_listeners.append(realtime.fence_session_out)
lifecycle.retry_listeners.append(realtime.fence_session_out)


@observability.lambda_handler()
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    return {**lifecycle.reap(), "expired": lifecycle.expire_due(), "released": lifecycle.release_due()}
