"""A session as the API answers it: the one definition that the session routes answer with and
that the SDK's ``SessionInfo`` reads. The server's stored record and create body extend these
with their own checks (``sluice.sessions.records``); a field that a newer server adds is ignored
here, not refused, so that an older client keeps reading sessions."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, computed_field, model_validator

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

    @computed_field  # type: ignore[prop-decorator]
    @property
    def taskIdentifier(self) -> str:
        """``taskId`` under the trigger.dev SDK's name (its session schema requires it)."""
        return self.taskId

    @model_validator(mode="before")
    @classmethod
    def _derived_on_input(cls, data: Any) -> Any:
        # Derived from taskId, so what a session's JSON says of it is not a field of its own.
        if isinstance(data, dict) and "taskIdentifier" in data:
            return {name: value for name, value in data.items() if name != "taskIdentifier"}
        return data
