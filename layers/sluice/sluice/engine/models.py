"""The trigger request and the run record, as the HTTP API shows them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import unquote

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    TypeAdapter,
    ValidationError,
    create_model,
    field_validator,
)

from sluice import strict_json
from sluice.config import TAG_MAX_CHARS, get_settings
from sluice.engine import packets, payloads
from sluice.engine.durations import parse_duration, resolve_instant
from sluice.errors import BadRequest, Unprocessable, issues_from_pydantic

# A task id, on the trigger path and in a batch item alike: the SDK percent-encodes it into the
# URL, so slashes, spaces and non-ASCII are legal; control characters (C0, DEL, C1) are not, as they
# would corrupt logs and every listing that shows the id.
TASK_ID_MAX_CHARS = 256
TaskId = Annotated[
    str, Field(min_length=1, max_length=TASK_ID_MAX_CHARS, pattern=r"^[^\x00-\x1f\x7f-\x9f]+$")
]
_TASK_ID: TypeAdapter[str] = TypeAdapter(TaskId)


def parse_task_id(path_value: str) -> str:
    """The task id of a route's path: percent-decoded exactly once, then held to ``TaskId``.

    Raises:
        Unprocessable: ``invalid_task_id``: escapes that are not UTF-8, or outside the rule.
    """
    try:
        task_id = unquote(path_value, errors="strict")
    except UnicodeDecodeError as exc:
        raise Unprocessable("The task id is not percent-encoded UTF-8", code="invalid_task_id") from exc
    try:
        return _TASK_ID.validate_python(task_id)
    except ValidationError as exc:
        raise Unprocessable(
            f"Invalid task id: 1-{TASK_ID_MAX_CHARS} characters, no control characters",
            code="invalid_task_id",
            issues=issues_from_pydantic(exc.errors()),
        ) from exc


# A duration ("10m", seconds) or, for a delay, an ISO-8601 time: 64 characters hold any of them.
# Bounded because the run stores the string (``ttl``): "000...01s" is a valid duration of any
# length. The numbers are strict so that an over-long string is refused, not read as a number.
DURATION_MAX_CHARS = 64
Duration = Annotated[str, Field(max_length=DURATION_MAX_CHARS)] | StrictInt | StrictFloat
# A run id names a run of ours ("run_" and 25 characters), but a parent id is the caller's to give:
# bounded, not checked, as the reference platform takes it.
ParentRunId = Annotated[str, Field(min_length=1, max_length=256)]


QUEUE_NAME_MAX_CHARS = 256


class QueueOption(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=QUEUE_NAME_MAX_CHARS)]
    concurrencyLimit: Annotated[StrictInt, Field(ge=0, le=100_000)] | None = None


class IdempotencyKeyOptions(BaseModel):
    """The key as the user gave it, beside the hash the trigger.dev SDK sends as ``idempotencyKey``
    (the scope says what the SDK hashed it with): kept on the run and shown, so the run can be
    found by the key its user knows."""

    model_config = ConfigDict(extra="forbid")
    key: Annotated[str, Field(max_length=2048)]
    scope: Literal["run", "attempt", "global"]


# The trigger.dev SDK's machine presets: a worker may size itself by it; Sluice stores and shows it.
MachinePreset = Literal["micro", "small-1x", "small-2x", "medium-1x", "medium-2x", "large-1x", "large-2x"]
NonNegative = Annotated[StrictInt | StrictFloat, Field(ge=0)]
ShortText = Annotated[str, Field(max_length=256)]


class ReferenceOnlyOptions(BaseModel):
    """Options the trigger.dev v4 SDK sends that Sluice accepts and ignores, each for a reason
    (README, "Using the trigger.dev SDK"). Declared rather than let through, so that a typo is
    still a 422; never stored (``exclude``), so a batch envelope or a buffer entry does not carry
    them either."""

    # The SDK's measure of the payload before upload: Sluice measures what it stores itself.
    payloadSize: Annotated[int, Field(ge=0)] | None = Field(default=None, exclude=True)
    # Deployments, versions and regions are the worker platform's; Sluice runs no workers.
    lockToVersion: ShortText | None = Field(default=None, exclude=True)
    externalDeploymentId: ShortText | None = Field(default=None, exclude=True)
    region: ShortText | None = Field(default=None, exclude=True)
    # Named concurrency limits and gates are the queue's, which the run engine owns.
    concurrency: Annotated[list[ShortText], Field(max_length=2)] | None = Field(default=None, exclude=True)
    gates: Annotated[list[dict[str, Any]], Field(max_length=3)] | None = Field(default=None, exclude=True)
    # Debouncing needs a per-key timer Sluice does not have: every trigger makes its run.
    debounce: dict[str, Any] | None = Field(default=None, exclude=True)
    # The SDK sends metadata as a JSON object; its type is always application/json.
    metadataType: ShortText | None = Field(default=None, exclude=True)
    # Engine-v1 and dashboard bookkeeping of the reference platform.
    bulkActionId: ShortText | None = Field(default=None, exclude=True)
    parentBatch: ShortText | None = Field(default=None, exclude=True)
    parentAttempt: ShortText | None = Field(default=None, exclude=True)
    dependentAttempt: ShortText | None = Field(default=None, exclude=True)
    dependentBatch: ShortText | None = Field(default=None, exclude=True)


class TriggerOptions(ReferenceOnlyOptions):
    """``options`` of a trigger. Unknown fields are rejected so that a typo is not silently ignored."""

    model_config = ConfigDict(extra="forbid")

    idempotencyKey: str | None = None
    idempotencyKeyTTL: Duration | None = None
    delay: Duration | None = None
    ttl: Duration | None = None
    tags: list[Annotated[str, Field(min_length=1, max_length=TAG_MAX_CHARS)]] | None = None
    queue: QueueOption | None = None
    concurrencyKey: Annotated[str, Field(max_length=1024)] | None = None
    # Strict: JSON's true is no count of attempts (pydantic would read it as 1).
    maxAttempts: Annotated[StrictInt, Field(ge=1, le=100)] | None = None
    metadata: dict[str, Any] | None = None
    parentRunId: ParentRunId | None = None
    resumeParentOnCompletion: StrictBool = False
    # What the trigger.dev SDK sends beside Sluice's own options: stored and shown on the run.
    payloadType: Annotated[str, Field(max_length=128)] | None = None
    idempotencyKeyOptions: IdempotencyKeyOptions | None = None
    machine: MachinePreset | None = None
    priority: NonNegative | None = None
    maxDuration: NonNegative | None = None
    test: StrictBool = False

    @field_validator("concurrencyKey", mode="before")
    @classmethod
    def _numeric_concurrency_key(cls, value: Any) -> Any:
        # The reference schema coerces a numeric key, which JavaScript callers often send.
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("tags", mode="before")
    @classmethod
    def _tags_as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("tags")
    @classmethod
    def _tag_count(cls, value: list[str] | None) -> list[str] | None:
        limit = get_settings().max_tags
        if value is not None and len(value) > limit:
            raise ValueError(f"at most {limit} tags")
        return value

    @field_validator("queue", mode="before")
    @classmethod
    def _queue_by_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @field_validator("idempotencyKeyTTL", "ttl")
    @classmethod
    def _is_duration(cls, value: Duration | None) -> Duration | None:
        if value is not None:
            parse_duration(value)
        return value


class TriggerBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payload: Any = None
    options: TriggerOptions = Field(default_factory=TriggerOptions)
    # The trigger.dev SDK's trace context: Sluice keeps no traces.
    context: Any = Field(default=None, exclude=True)

    def decoded(self, tenant: str) -> TriggerBody:
        """This trigger with its payload decoded from the packet ``options.payloadType`` names
        (``engine.packets``); itself when there is nothing to decode.

        Raises:
            Unprocessable, PayloadTooLarge, ServiceUnavailable: ``packets.decode``.
        """
        payload, payload_type = packets.decode(self.payload, self.options.payloadType, tenant)
        if payload is self.payload and payload_type == self.options.payloadType:
            return self
        options = self.options.model_copy(update={"payloadType": payload_type})
        return self.model_copy(update={"payload": payload, "options": options})


def check_idempotency_key_length(key: Any) -> None:
    """An over-long idempotency key is a 400 (not a 422), as the reference platform answers it.

    Raises:
        BadRequest: ``key`` is a string over SLUICE_IDEMPOTENCY_KEY_MAX_CHARS.
    """
    limit = get_settings().idempotency_key_max_chars
    if isinstance(key, str) and len(key) > limit:
        raise BadRequest(
            f"idempotencyKey is {len(key)} characters; the limit is {limit}",
            code="idempotency_key_too_long",
        )


def parse_trigger_body(raw: Any, tenant: str) -> TriggerBody:
    """Validate a decoded trigger body of ``tenant``, its payload decoded (``TriggerBody.decoded``).

    Raises:
        BadRequest: an idempotency key over the limit (400, as the reference platform answers).
        Unprocessable: any other invalid field (422, with the issues).
    """
    if not isinstance(raw, dict):
        raise Unprocessable("The request body must be a JSON object", code="invalid_body")
    options = raw.get("options")
    check_idempotency_key_length(options.get("idempotencyKey") if isinstance(options, dict) else None)
    try:
        body = TriggerBody.model_validate(raw)
    except ValidationError as exc:
        raise Unprocessable("Invalid trigger request", issues=issues_from_pydantic(exc.errors())) from exc
    body = body.decoded(tenant)
    check_trigger(body)
    return body


def check_trigger(body: TriggerBody) -> None:
    """What the engine could not make a run from, refused while the caller is listening. Triggers
    and batch items both pass here, so an item is refused in phase 2 exactly as a trigger is.

    Raises:
        Unprocessable: ``payload_too_deep`` for a payload or metadata over ``strict_json.MAX_DEPTH``;
            ``invalid_delay`` for a delay that is neither a duration nor an ISO-8601 time.
        PayloadTooLarge: ``metadata_too_large`` (``check_metadata``).
    """
    check_metadata(body.options)
    if body.options.delay is not None:
        try:
            resolve_instant(body.options.delay, datetime.now(UTC))
        except ValueError as exc:
            raise Unprocessable(str(exc), code="invalid_delay") from exc
    for name, value in (("payload", body.payload), ("options.metadata", body.options.metadata)):
        levels = strict_json.depth(value)
        if levels > strict_json.MAX_DEPTH:
            raise Unprocessable(
                f"{name} nests {levels} levels deep; the limit is {strict_json.MAX_DEPTH}",
                code="payload_too_deep",
            )


def check_metadata(options: TriggerOptions) -> None:
    """Metadata shares the run's DynamoDB item with the payload (see SLUICE_MAX_METADATA_BYTES).

    Raises:
        PayloadTooLarge: ``metadata_too_large``: over SLUICE_MAX_METADATA_BYTES as compact JSON.
    """
    if options.metadata is not None:
        limit = get_settings().max_metadata_bytes
        payloads.encode_within(options.metadata, limit, what="options.metadata", code="metadata_too_large")


def option_fields(options: TriggerOptions) -> dict[str, Any]:
    """The run fields that come straight from a trigger's options."""
    return {
        "idempotencyKey": options.idempotencyKey,
        "tags": options.tags or [],
        "ttl": str(options.ttl) if options.ttl is not None else None,
        "queue": options.queue.name if options.queue else None,
        "queueLimit": options.queue.concurrencyLimit if options.queue else None,
        "concurrencyKey": options.concurrencyKey,
        "maxAttempts": options.maxAttempts,
        "metadata": options.metadata,
        "parentRunId": options.parentRunId,
        "payloadType": options.payloadType,
        "idempotencyKeyOptions": options.idempotencyKeyOptions,
        "machine": options.machine,
        "priority": options.priority,
        "maxDuration": options.maxDuration,
        "isTest": options.test,
    }


class RunError(BaseModel):
    code: str
    message: str


class Run(BaseModel):
    """A run as the engine stores it and ``GET /api/v1/runs/{id}`` returns it."""

    model_config = ConfigDict(populate_by_name=True)

    id: str
    taskId: str
    orgId: str
    envId: str
    status: str
    payload: Any = None
    payloadRef: str | None = None
    createdAt: datetime
    idempotencyKey: str | None = None
    idempotencyKeyExpiresAt: datetime | None = None
    tags: list[str] = Field(default_factory=list)
    delayUntil: datetime | None = None
    ttl: str | None = None
    queue: str | None = None
    # The queue's ``concurrencyLimit`` from the trigger's options: the limit a start holds the
    # queue to unless ``PUT /api/v1/queues/{name}`` set one (engine.queues).
    queueLimit: int | None = None
    concurrencyKey: str | None = None
    maxAttempts: int | None = None
    metadata: dict[str, Any] | None = None
    parentRunId: str | None = None
    batchId: str | None = None
    batchIndex: int | None = None
    error: RunError | None = None
    buffered: bool = False
    # The worker lifecycle (sluice.engine.lifecycle): the attempt started last, when the first
    # attempt started, when the run reached a final status, and what the task returned.
    attempt: int = 0
    startedAt: datetime | None = None
    completedAt: datetime | None = None
    canceledAt: datetime | None = None
    expiredAt: datetime | None = None
    output: Any = None
    outputRef: str | None = None
    # The keys of the run's realtime streams (sluice.streams.runs records each once), so a reader
    # such as the console finds them from the run.
    streamKeys: list[str] = Field(default_factory=list)
    # From the trigger.dev SDK's options (``TriggerOptions``).
    payloadType: str | None = None
    idempotencyKeyOptions: IdempotencyKeyOptions | None = None
    machine: str | None = None
    priority: float | None = None
    maxDuration: float | None = None
    isTest: bool = False

    def to_api(self) -> dict[str, Any]:
        """The public view: the environment's ids and S3 keys stay internal. A superjson payload
        shows as its plain JSON, with ``payloadMeta`` for the readers that revive it."""
        body = self.model_dump(mode="json", exclude=set(RUN_INTERNAL_FIELDS))
        body["payload"], meta = packets.for_reader(body["payload"], self.payloadType)
        if meta is not None:
            body["payloadMeta"] = meta
        return body


RUN_INTERNAL_FIELDS = frozenset({"orgId", "envId", "payloadRef", "outputRef"})
# ``GET /api/v1/runs/{runId}`` in the API's document: the run without its internal fields, made
# from ``Run`` so that the two cannot drift apart.
RunView: type[BaseModel] = create_model(
    "RunView",
    __doc__="A run as `GET /api/v1/runs/{runId}` answers it",
    **{  # type: ignore[call-overload]
        name: (field.annotation, field)
        for name, field in Run.model_fields.items()
        if name not in RUN_INTERNAL_FIELDS
    },
)
