"""The burst buffer's CloudWatch metrics: counts with low-cardinality dimensions only (outcome and
reason, never an organization, environment or run id), each its own EMF line."""

from __future__ import annotations

from sluice.observability import count_now, namespace

__all__ = ["count", "namespace"]


def count(name: str, value: int = 1, **dimensions: str) -> None:
    """A count with its own dimensions (a single-metric EMF line)."""
    count_now(name, value, **dimensions)
