"""The one rule for whether a failure is worth retrying, for the workers that decide between a
retry (requeue, redelivery) and failing the work for good: the drainer and ``batch_runs``.

A dependency that is down, throttled or failing is retryable: a 503 already converted
(``ServiceUnavailable``), or a raw error that its backend's rule calls so (``sluice.aws``,
``sluice.redis``). A refused request (a lost condition, invalid input, denied access) is not:
retrying it can only fail the same way.
"""

from __future__ import annotations

from sluice import aws, redis
from sluice.errors import ServiceUnavailable


def is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, ServiceUnavailable) or aws.is_retryable(exc) or redis.is_retryable(exc)
