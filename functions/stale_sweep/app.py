"""Stale sweep (every minute): requeue abandoned entries, re-signal lost signals, report the buffer."""

from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from sluice import mollifier
from sluice.api import logger

metrics = Metrics(namespace=mollifier.metrics.namespace())


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    report = mollifier.sweep()
    metrics.add_metric(name="BufferDepth", unit=MetricUnit.Count, value=report.depth)
    metrics.add_metric(name="BufferOldestAge", unit=MetricUnit.Seconds, value=report.oldest_age_s)
    metrics.add_metric(name="BufferDraining", unit=MetricUnit.Count, value=report.draining)
    metrics.add_metric(name="BufferReclaimed", unit=MetricUnit.Count, value=report.reclaimed)
    metrics.add_metric(name="BufferResignalled", unit=MetricUnit.Count, value=report.resignalled)
    logger.info("mollifier.sweep", extra=report.__dict__)
    return {"depth": report.depth, "oldestAgeSeconds": report.oldest_age_s, "draining": report.draining}
