"""The per-environment batch token bucket: each batch costs its runCount in tokens.

Redis down is a 503, not a pass: phase 2 cannot deduplicate items without Redis either, so a batch
created while it is down could only strand until the seal timeout aborts it. Refusing phase 1
leaves nothing behind, and the client retries it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

from sluice.batches import keys
from sluice.batches.errors import BatchRateLimited
from sluice.batches.state import redis_errors
from sluice.config import get_settings
from sluice.redis import OnceScript, RedisClient, get_redis


@dataclass(frozen=True)
class Allowance:
    limit: int
    remaining: int
    # Unix milliseconds, as the reference platform and its SDK read X-RateLimit-Reset.
    reset_at_ms: int


@cache
def _script(client: RedisClient) -> OnceScript:
    # Once: a retried call would take the tokens twice.
    return OnceScript(client, "sluice.batches", "token_bucket")


def consume(tenant: str, run_count: int) -> Allowance:
    """Take ``run_count`` tokens (at most the bucket's capacity, so a staged batch larger than the
    bucket waits for a full bucket instead of never fitting).

    Raises:
        BatchRateLimited: not enough tokens; headers carry Retry-After and X-RateLimit-*.
        ServiceUnavailable: Redis is down.
    """
    settings = get_settings()
    capacity = settings.batch_rate_limit_max
    interval_ms = math.ceil(settings.batch_rate_limit_interval_s * 1000)
    cost = min(run_count, capacity)
    client = get_redis()
    with redis_errors():
        allowed, tokens, now_ms, wait_ms = _script(client)(
            keys=[keys.rate_limit(tenant)],
            args=[capacity, settings.batch_rate_limit_refill, interval_ms, cost],
        )
    reset_at_ms = int(now_ms) + int(wait_ms)
    allowance = Allowance(capacity, max(0, int(tokens)), reset_at_ms)
    if not allowed:
        retry_after = max(1, math.ceil(int(wait_ms) / 1000))
        raise BatchRateLimited(
            f"Batch rate limit exceeded: {cost} runs requested, {allowance.remaining} available; "
            f"retry in {retry_after} s",
            headers={
                "Retry-After": str(retry_after),
                "X-RateLimit-Limit": str(capacity),
                "X-RateLimit-Remaining": str(allowance.remaining),
                "X-RateLimit-Reset": str(reset_at_ms),
            },
        )
    return allowance
