"""What the buffer stores and returns, and what the gate decides."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Json, NonNegativeInt, ValidationError

from sluice.engine import RunError, TriggerBody
from sluice.mollifier.errors import MalformedEntry


class Snapshot(BaseModel):
    """Everything a replay needs, so the drainer never re-resolves anything at drain time."""

    taskId: str
    envType: str
    body: TriggerBody
    idempotencyKeyExpiresAt: datetime | None = None


class BufferEntry(BaseModel):
    """One buffered run: the entry hash. Fields added after the first release have defaults, so an
    older entry still parses."""

    runId: str
    envId: str
    orgId: str
    taskId: str
    snapshot: str
    status: Literal["QUEUED", "DRAINING", "FAILED"]
    attempts: NonNegativeInt
    createdAt: datetime
    createdAtMicros: int = 0
    idempotencyLookupKey: str = ""
    materialised: bool = False
    lastError: Json[RunError] | None = None

    @classmethod
    def from_hash(cls, fields: dict[str, Any]) -> BufferEntry:
        """Raises MalformedEntry: the hash is not a buffer entry (a replay could never succeed)."""
        try:
            return cls.model_validate(fields)
        except ValidationError as exc:
            raise MalformedEntry(f"buffer entry {fields.get('runId')!r} does not parse: {exc}") from exc

    def parsed_snapshot(self) -> Snapshot:
        try:
            return Snapshot.model_validate_json(self.snapshot)
        except ValidationError as exc:
            raise MalformedEntry(f"snapshot of {self.runId} does not parse: {exc}") from exc


class CarriedEntry(BaseModel):
    """The buffered trigger itself, in its drain signal: SQS, not Redis, is the durable copy of an
    accepted trigger. ``snapshot`` is the entry's snapshot JSON, or ``snapshotRef`` its key in the
    payload bucket when it is too large for a message."""

    taskId: str
    createdAt: datetime
    snapshot: str | None = None
    snapshotRef: str | None = None


class DrainSignal(BaseModel):
    """The DrainQueue message. It stands for "one entry waits": the drainer pops the next entry in
    fair order, which need not be this one; ``entry`` (absent in signals from older releases)
    carries the signal's own entry so that it survives Redis losing its data."""

    runId: str
    orgId: str
    envId: str
    shard: int
    entry: CarriedEntry | None = None


@dataclass(frozen=True)
class AcceptResult:
    kind: Literal["accepted", "duplicate_run_id", "duplicate_idempotency"]
    run_id: str


@dataclass(frozen=True)
class TripResult:
    count: int
    tripped: bool


class Outcome(StrEnum):
    MOLLIFY = "mollify"
    SHADOW_LOG = "shadow_log"
    PASS_THROUGH = "pass_through"


class Reason(StrEnum):
    """Why the gate decided as it did; a closed set so that the metric stays low-cardinality."""

    NOT_ENROLLED = "not_enrolled"
    WAITS_ON_PARENT = "waits_on_parent"
    LARGE_PAYLOAD = "large_payload"
    UNDER_THRESHOLD = "under_threshold"
    PER_ENV_RATE = "per_env_rate"
    EVALUATOR_FAILED = "evaluator_failed"
    BUFFER_FAILED = "buffer_failed"


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    reason: Reason
    enrolled: bool
    trip: TripResult | None = None
