"""Phase 1 (create), status, and presigned uploads for a batch."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sluice import aws
from sluice.auth import Environment, owns
from sluice.batches import keys, ratelimit, state, store
from sluice.batches.errors import BatchNotPending
from sluice.batches.ingest import load_batch
from sluice.batches.models import (
    MAX_PAYLOAD_UPLOADS,
    Batch,
    BatchStatus,
    CreateBatchRequest,
    CreateBatchResponse,
)
from sluice.config import get_settings
from sluice.engine import parse_duration
from sluice.errors import BadRequest, ServiceUnavailable, Unprocessable

NDJSON = "application/x-ndjson"
RUNS_PAGE = 1000  # run ids per status page: 1000 ids are about 35 KB of JSON


@dataclass(frozen=True)
class CreateResult:
    batch: Batch
    is_cached: bool
    upload: dict[str, Any] | None = None

    def to_api(self) -> dict[str, Any]:
        answer = CreateBatchResponse(
            id=self.batch.id,
            runCount=self.batch.runCount,
            isCached=self.is_cached,
            idempotencyKey=self.batch.idempotencyKey or None,
            upload=self.upload or None,
        )
        return answer.model_dump(exclude_none=True)


def _now() -> datetime:
    return datetime.now(UTC)


def create_batch(env: Environment, request: CreateBatchRequest) -> CreateResult:
    """Create a PENDING batch, or return the one its idempotency key names.

    Raises:
        BatchRateLimited: the environment's token bucket is short of runCount tokens (429).
        Unprocessable: an invalid idempotencyKeyTTL.
        ServiceUnavailable: Redis or DynamoDB is down; nothing was created.
    """
    now = _now()
    settings = get_settings()
    binding: tuple[str, int] | None = None
    if request.idempotencyKey:
        pk = keys.idempotency_pk(env.tenant, request.idempotencyKey)
        if (cached := _cached(env, pk, now)) is not None:
            return cached
        try:
            ttl = parse_duration(request.idempotencyKeyTTL or settings.idempotency_default_ttl)
        except ValueError as exc:
            raise Unprocessable(str(exc), code="invalid_idempotency_ttl") from exc
        binding = (pk, math.ceil((now + ttl).timestamp()))
    ratelimit.consume(env.tenant, request.runCount)
    batch = Batch(
        id=keys.new_batch_id(),
        orgId=env.org_id,
        envId=env.env_id,
        status=BatchStatus.PENDING,
        runCount=request.runCount,
        staged=request.staged,
        createdAt=now,
        sealDeadline=now + timedelta(seconds=settings.batch_seal_timeout_s),
        idempotencyKey=request.idempotencyKey,
        parentRunId=request.parentRunId,
        resumeParentOnCompletion=request.resumeParentOnCompletion,
    )
    try:
        store.create(batch, binding, now)
    except store.IdempotencyKeyTaken:
        # A concurrent create with the same key won; its batch is the answer.
        assert binding is not None
        if (cached := _cached(env, binding[0], now)) is not None:
            return cached
        raise ServiceUnavailable(
            "The batch idempotency record changed underneath the request; retry"
        ) from None
    return CreateResult(batch, is_cached=False, upload=_staging_upload(batch))


def _cached(env: Environment, pk: str, now: datetime) -> CreateResult | None:
    batch_id = store.lookup_idempotency(pk, now)
    batch = store.get(batch_id) if batch_id else None
    if batch is None or not owns(env, batch.orgId, batch.envId):
        return None
    return CreateResult(batch, is_cached=True, upload=_staging_upload(batch))


def _presign_put(bucket: str, key: str, content_type: str) -> dict[str, Any]:
    ttl = get_settings().batch_upload_url_ttl_s
    with aws.unavailable_as_503("upload store"):
        url = aws.s3().generate_presigned_url(
            "put_object",
            Params={"Bucket": bucket, "Key": key, "ContentType": content_type},
            ExpiresIn=ttl,
        )
    expires = (_now() + timedelta(seconds=ttl)).isoformat()
    return {"url": url, "method": "PUT", "headers": {"content-type": content_type}, "expiresAt": expires}


def _staging_upload(batch: Batch) -> dict[str, Any] | None:
    if not batch.staged or batch.status != BatchStatus.PENDING or batch.sealed:
        return None
    return _presign_put(get_settings().staging_bucket, keys.staging(batch.tenant, batch.id), NDJSON)


def payload_uploads(env: Environment, batch_id: str, indices: Any) -> list[dict[str, Any]]:
    """Presigned PUT URLs for item payloads the client offloads before phase 2; the item then says
    ``"options": {"payloadType": "application/store"}`` and phase 2 checks the object exists.

    Raises:
        BadRequest: ``indices`` is not a list of up to 100 indexes in [0, runCount).
        BatchNotPending: the batch takes no more items.
    """
    batch = load_batch(env, batch_id)
    if batch.status != BatchStatus.PENDING or batch.sealed:
        raise BatchNotPending(f"Batch {batch_id} is not in PENDING status (current: {batch.status})")
    valid = (
        isinstance(indices, list)
        and 0 < len(indices) <= MAX_PAYLOAD_UPLOADS
        and all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < batch.runCount for i in indices)
    )
    if not valid:
        raise BadRequest(
            f"indices must be a list of 1 to {MAX_PAYLOAD_UPLOADS} item indexes in [0, {batch.runCount})",
            code="invalid_indices",
        )
    bucket = get_settings().payload_bucket
    return [
        {"index": i, **_presign_put(bucket, keys.item_payload(batch.tenant, batch.id, i), "application/json")}
        for i in indices
    ]


def get_status(env: Environment, batch_id: str, runs_offset: int = 0) -> dict[str, Any]:
    """The batch, its counts and a page of its run ids in index order."""
    batch = load_batch(env, batch_id)
    done = batch.status in (BatchStatus.COMPLETED, BatchStatus.PARTIAL_FAILED)
    if done:
        enqueued, processed, failed = batch.runCount, batch.processedCount or 0, batch.failedCount or 0
    elif batch.sealed:
        enqueued = batch.runCount
        processed, failed = state.processed_counts(batch.id)
    else:
        enqueued = state.enqueued_count(batch.id)
        processed, failed = state.processed_counts(batch.id)
    start = max(0, runs_offset)
    end = min(batch.runCount, start + RUNS_PAGE)
    body = batch.model_dump(
        mode="json", exclude={"orgId", "envId", "sealDeadline", "processedCount", "failedCount"}
    )
    body.update(
        enqueuedCount=enqueued,
        processedCount=processed,
        failedCount=failed,
        runs=[keys.run_id(batch.id, i) for i in range(start, end)],
        runsOffset=start,
        nextRunsOffset=end if end < batch.runCount else None,
    )
    if batch.status == BatchStatus.PENDING and not batch.sealed:
        body["sealDeadline"] = batch.sealDeadline.isoformat()
    return body
