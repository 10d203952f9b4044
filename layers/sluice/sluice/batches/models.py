"""Batch requests, items and the batch record, as the HTTP API shows them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sluice.auth import tenant_key
from sluice.config import get_settings
from sluice.engine import TriggerOptions
from sluice.engine.models import (
    Duration,
    IdempotencyKeyOptions,
    ParentRunId,
    TaskId,
    check_idempotency_key_length,
)
from sluice.errors import BadRequest, Unprocessable, issues_from_pydantic

# The object-store marker of the reference SDK: the payload was uploaded before phase 2.
STORE_PAYLOAD_TYPE = "application/store"
PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
MAX_PAYLOAD_UPLOADS = 100  # presigned payload URLs per request


class BatchStatus(StrEnum):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    PARTIAL_FAILED = "PARTIAL_FAILED"
    ABORTED = "ABORTED"


class CreateBatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    runCount: Annotated[int, Field(ge=1)]
    idempotencyKey: str | None = None
    idempotencyKeyTTL: Duration | None = None
    parentRunId: ParentRunId | None = None
    resumeParentOnCompletion: bool = False
    # Accepted for the reference SDK's sake; an API key may trigger every task of its environment.
    taskIdentifiers: list[str] | None = None
    # The key as the trigger.dev SDK's user gave it (it sends the hash as ``idempotencyKey``, on
    # which the batch dedups); each item's own key options land on its run.
    idempotencyKeyOptions: IdempotencyKeyOptions | None = Field(default=None, exclude=True)
    staged: bool = False


def parse_create_request(raw: Any) -> CreateBatchRequest:
    """Validate a phase-1 body.

    Raises:
        BadRequest: runCount not a positive integer, over the limit, or an idempotency key over
            the limit (400, as the reference platform answers them).
        Unprocessable: any other invalid field.
    """
    if not isinstance(raw, dict):
        raise Unprocessable("The request body must be a JSON object", code="invalid_body")
    settings = get_settings()
    count = raw.get("runCount")
    if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
        raise BadRequest("runCount must be a positive integer", code="invalid_run_count")
    staged = raw.get("staged") is True
    limit = settings.batch_max_staged_items if staged else settings.batch_max_items
    if count > limit:
        hint = "" if staged else ' Use "staged": true for larger batches.'
        raise BadRequest(
            f"Batch runCount of {count} exceeds maximum allowed of {limit}.{hint}",
            code="batch_too_large",
        )
    check_idempotency_key_length(raw.get("idempotencyKey"))
    try:
        return CreateBatchRequest.model_validate(raw)
    except ValidationError as exc:
        raise Unprocessable("Invalid batch request", issues=issues_from_pydantic(exc.errors())) from exc


class BatchItemOptions(TriggerOptions):
    @field_validator("idempotencyKey")
    @classmethod
    def _key_length(cls, value: str | None) -> str | None:
        limit = get_settings().idempotency_key_max_chars
        if value is not None and len(value) > limit:
            raise ValueError(f"idempotencyKey is {len(value)} characters; the limit is {limit}")
        return value

    def trigger_options(self) -> TriggerOptions:
        return TriggerOptions.model_validate(self.model_dump())


class BatchItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: Annotated[int, Field(ge=0, strict=True)]
    task: TaskId
    payload: Any = None
    options: BatchItemOptions = Field(default_factory=BatchItemOptions)


class PayloadUploadsRequest(BaseModel):
    """A ``/payloads`` body: the item indexes to presign payload uploads for (the service checks
    them against the batch)."""

    model_config = ConfigDict(extra="forbid")

    indices: Annotated[
        list[Annotated[int, Field(ge=0, strict=True)]], Field(min_length=1, max_length=MAX_PAYLOAD_UPLOADS)
    ]


class Batch(BaseModel):
    """The batch record in BatchesTable."""

    id: str
    orgId: str
    envId: str
    status: BatchStatus
    runCount: int
    sealed: bool = False
    staged: bool = False
    createdAt: datetime
    sealDeadline: datetime
    sealedAt: datetime | None = None
    completedAt: datetime | None = None
    idempotencyKey: str | None = None
    parentRunId: str | None = None
    resumeParentOnCompletion: bool = False
    processedCount: int | None = None
    failedCount: int | None = None
    error: str | None = None

    @property
    def tenant(self) -> str:
        return tenant_key(self.orgId, self.envId)

    def is_retry_success(self) -> bool:
        """A phase-2 retry of this batch has nothing left to do (spec §2.5): it sealed, or it got
        further than sealing. ABORTED is not one: no complete batch exists, the client must make a
        new one."""
        if self.status in (BatchStatus.PROCESSING, BatchStatus.COMPLETED, BatchStatus.PARTIAL_FAILED):
            return True
        return self.status == BatchStatus.PENDING and (self.sealed or self.completedAt is not None)


class CreateBatchResponse(BaseModel):
    """What ``POST /api/v3/batches`` answers (202 created, 200 the key's batch)."""

    id: str
    runCount: int
    isCached: bool
    idempotencyKey: str | None = None
    # A staged batch's upload: where to PUT the NDJSON file, and until when.
    upload: dict[str, Any] | None = None


class IngestResult(BaseModel):
    id: str
    itemsAccepted: int
    itemsDeduplicated: int
    sealed: bool
    enqueuedCount: int
    runCount: int
