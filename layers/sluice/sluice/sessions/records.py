"""The server's view of a session: the create body, the stored record, and its public shape.

A session id is ``session_`` plus 25 base-36 characters; an ``externalId`` may never start with
``session_``, so every route tells the two forms apart by the prefix alone (as the reference does).
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from sluice.config import TAG_MAX_CHARS, get_settings
from sluice.engine.models import QueueOption, TriggerOptions
from sluice_wire.sessions import SessionView, TriggerConfigView

SESSION_PREFIX = "session_"
NAME_MAX_CHARS = 128
EXTERNAL_ID_MAX_CHARS = 256
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"

Name = Annotated[str, Field(min_length=1, max_length=NAME_MAX_CHARS)]
Tag = Annotated[str, Field(min_length=1, max_length=TAG_MAX_CHARS)]


def new_session_id() -> str:
    return SESSION_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(25))


def is_session_id(value: str) -> bool:
    return value.startswith(SESSION_PREFIX)


def _tag_count(value: list[str] | None) -> list[str] | None:
    limit = get_settings().max_tags
    if value is not None and len(value) > limit:
        raise ValueError(f"at most {limit} tags")
    return value


class SessionTriggerConfig(TriggerConfigView):
    """``TriggerConfig`` as a session stores it, with the checks the server applies."""

    basePayload: dict[str, Any] = Field(default_factory=dict)
    # The engine's own queue option (limits, unknown fields refused), where the view has a plain one.
    queue: QueueOption | None = None  # type: ignore[assignment]
    tags: list[Tag] | None = None
    maxAttempts: Annotated[int, Field(ge=1, le=100)] | None = None
    concurrencyKey: Annotated[str, Field(max_length=1024)] | None = None

    _tags = field_validator("tags")(_tag_count)

    @field_validator("queue", mode="before")
    @classmethod
    def _queue_by_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    def options(self) -> TriggerOptions:
        return TriggerOptions(
            queue=self.queue, tags=self.tags, maxAttempts=self.maxAttempts, concurrencyKey=self.concurrencyKey
        )


class TriggerConfig(SessionTriggerConfig):
    """How the session's runs are triggered: ``basePayload`` is merged under every run's payload."""

    # As a create gives it: an unknown field is rejected, so that a typo is not ignored.
    model_config = ConfigDict(extra="forbid")


class CreateSession(BaseModel):
    """``POST /api/v1/sessions``. Unknown fields are rejected so that a typo is not ignored."""

    model_config = ConfigDict(extra="forbid")

    externalId: Annotated[str, Field(min_length=1, max_length=EXTERNAL_ID_MAX_CHARS)] | None = None
    type: Name
    # ``taskIdentifier`` is the trigger.dev SDK's name for it.
    taskId: Annotated[Name, Field(validation_alias=AliasChoices("taskId", "taskIdentifier"))]
    tags: list[Tag] = Field(default_factory=list)
    metadata: dict[str, Any] | None = None
    triggerConfig: TriggerConfig = Field(default_factory=TriggerConfig)

    _tags = field_validator("tags")(_tag_count)

    @field_validator("externalId")
    @classmethod
    def _not_an_id(cls, value: str | None) -> str | None:
        if value is not None and is_session_id(value):
            raise ValueError(f"an externalId may not start with {SESSION_PREFIX!r}")
        return value


class Session(SessionView):
    """A session as stored: the public view plus its owner, which stays internal."""

    triggerConfig: SessionTriggerConfig = Field(default_factory=SessionTriggerConfig)

    envId: str
    orgId: str

    @property
    def closed(self) -> bool:
        return self.status == "CLOSED"

    def to_api(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"envId", "orgId"})
