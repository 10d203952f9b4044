"""Idempotency keys on the buffer's side, and across the engine and the buffer.

A keyed trigger is looked up in the engine (``engine.bound_run_id``), then in the buffer
(``buffered_owner``), before the gate. A burst of
triggers with one key can still straddle the trip boundary (some pass through to the engine, some
go to the buffer, each side deduplicating only itself), so an enrolled organization's keyed
trigger first takes a claim on the key: the first caller owns it until it publishes the run id it
produced; the others wait for that id (``SLUICE_MOLLIFIER_CLAIM_*``). Claims fail open: with Redis
down the engine's conditional write still deduplicates the pass-through side.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

from aws_lambda_powertools import Logger

from sluice.auth import tenant_key
from sluice.config import Settings
from sluice.mollifier.buffer import MollifierBuffer
from sluice.mollifier.errors import ClaimTimedOut
from sluice.mollifier.models import BufferEntry
from sluice.redis import UNAVAILABLE_ERRORS

logger = Logger(service="sluice", child=True)
RESOLVED = "resolved:"


def buffered_owner(
    buffer: MollifierBuffer, *, org_id: str, env_id: str, task_id: str, key: str, now: datetime
) -> BufferEntry | None:
    """The buffered run that owns the key. A key past its TTL is released and counts as a miss;
    Redis errors count as a miss (fail open)."""
    try:
        entry = buffer.lookup_idempotency(org_id, env_id, task_id, key)
        if entry is None:
            return None
        expires = entry.parsed_snapshot().idempotencyKeyExpiresAt
        if expires is not None and expires <= now:
            buffer.delete_if_equals(entry.idempotencyLookupKey, entry.runId)
            return None
        return entry
    except UNAVAILABLE_ERRORS:
        logger.warning("mollifier.lookup_failed", extra={"envId": env_id})
        return None


@dataclass(frozen=True)
class HeldClaim:
    buffer: MollifierBuffer
    key: str
    token: str
    ttl_s: int

    def publish(self, run_id: str) -> None:
        try:
            if not self.buffer.publish_claim(self.key, self.token, run_id, self.ttl_s):
                logger.warning("mollifier.claim_lost", extra={"runId": run_id})
        except UNAVAILABLE_ERRORS:
            logger.warning("mollifier.claim_publish_failed", extra={"runId": run_id})

    def release(self) -> None:
        try:
            self.buffer.release_claim(self.key, self.token)
        except UNAVAILABLE_ERRORS:
            logger.warning("mollifier.claim_release_failed")


def claim_ttl(settings: Settings, key_expires: datetime, now: datetime) -> int:
    """Never longer than the key lives, but never so short that it expires mid-pipeline."""
    remaining = math.ceil((key_expires - now).total_seconds())
    return max(settings.mollifier_claim_min_ttl_s, min(settings.mollifier_claim_ttl_s, remaining))


def claim_or_await(
    buffer: MollifierBuffer,
    settings: Settings,
    *,
    org_id: str,
    env_id: str,
    task_id: str,
    key: str,
    ttl_s: int,
) -> HeldClaim | str | None:
    """Own the key's claim, or wait for its owner's run id.

    Returns:
        a ``HeldClaim`` (publish or release it); the run id the owner published; or None when
        Redis failed (proceed without a claim).

    Raises:
        ClaimTimedOut: the owner neither published nor released within the wait.
    """
    claim_key = buffer.keys_for(org_id).claim(tenant_key(org_id, env_id), task_id, key)
    token = uuid.uuid4().hex
    deadline = time.monotonic() + settings.mollifier_claim_wait_ms / 1000
    try:
        while True:
            state = buffer.claim(claim_key, token, ttl_s)
            if state == "claimed":
                return HeldClaim(buffer, claim_key, token, ttl_s)
            if state.startswith(RESOLVED):
                return state.removeprefix(RESOLVED)
            if time.monotonic() >= deadline:
                raise ClaimTimedOut("Idempotency claim resolution timed out; retry shortly")
            time.sleep(settings.mollifier_claim_poll_ms / 1000)
    except UNAVAILABLE_ERRORS:
        logger.warning("mollifier.claim_failed", extra={"envId": env_id})
        return None
