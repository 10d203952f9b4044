"""A session as the API answers it: the one definition that the session routes answer with and
that the SDK's ``SessionInfo`` reads. The server's stored record and create body extend these
with their own checks (``sluice.sessions.records``); a field that a newer server adds is ignored
here, not refused, so that an older client keeps reading sessions."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

SessionStatus = Literal["ACTIVE", "CLOSED"]


class QueueView(BaseModel):
    name: str
    concurrencyLimit: int | None = None


class TriggerConfigView(BaseModel):
    """How the session's runs are triggered: ``basePayload`` is merged under every run's payload."""

    basePayload: dict[str, Any] = Field(default_factory=dict)
    queue: QueueView | None = None
    tags: list[str] | None = None
    maxAttempts: int | None = None
    concurrencyKey: str | None = None


class SessionView(BaseModel):
    id: str
    externalId: str | None = None
    type: str
    taskId: str
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] | None = None
    triggerConfig: TriggerConfigView = Field(default_factory=TriggerConfigView)
    status: SessionStatus = "ACTIVE"
    currentRunId: str | None = None
    # Bumped by every claim of a new run: the atomic claim conditions on it (spec section 4.2).
    currentRunVersion: int = 0
    createdAt: datetime
    closedAt: datetime | None = None
