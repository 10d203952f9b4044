"""CloudWatch metrics (Powertools EMF) with low-cardinality dimensions only: outcome and reason,
never an organization, environment or run id."""

from __future__ import annotations

import os

from aws_lambda_powertools.metrics import MetricUnit, single_metric

# Powertools needs a namespace; template.yaml sets POWERTOOLS_METRICS_NAMESPACE per stage, and
# this keeps tests and scripts without it from raising.
DEFAULT_NAMESPACE = "Sluice"


def namespace() -> str:
    return os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_NAMESPACE


def count(name: str, value: int = 1, **dimensions: str) -> None:
    """A count with its own dimensions (a single-metric EMF line)."""
    with single_metric(name=name, unit=MetricUnit.Count, value=value, namespace=namespace()) as metric:
        for key, dimension in dimensions.items():
            metric.add_dimension(name=key, value=dimension)
