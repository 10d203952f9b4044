"""Stale sweep (every minute): requeue abandoned entries, re-signal lost signals, report the buffer."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from sluice import mollifier, observability
from sluice.observability import metrics


@observability.lambda_handler()
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    report = mollifier.sweep()
    metrics.add_metric(name="BufferDepth", unit=MetricUnit.Count, value=report.depth)
    metrics.add_metric(name="BufferOldestAge", unit=MetricUnit.Seconds, value=report.oldest_age_s)
    metrics.add_metric(name="BufferDraining", unit=MetricUnit.Count, value=report.draining)
    metrics.add_metric(name="BufferReclaimed", unit=MetricUnit.Count, value=report.reclaimed)
    metrics.add_metric(name="BufferResignalled", unit=MetricUnit.Count, value=report.resignalled)
    observability.logger.info("mollifier.sweep", extra=report.__dict__)
    return {"depth": report.depth, "oldestAgeSeconds": report.oldest_age_s, "draining": report.draining}
