"""The session routes' use cases: create (idempotent on externalId), get, list, close, snapshot.

Every lookup is scoped to the caller's environment: another environment's session is a 404, the
same answer as a session that does not exist.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError
from pydantic import ValidationError

from sluice import aws
from sluice.auth import Environment, owns, tenant_key
from sluice.aws import ConditionFailed
from sluice.config import get_settings
from sluice.engine import payloads
from sluice.errors import (
    BadRequest,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    Unprocessable,
    issues_from_pydantic,
)
from sluice.sessions import runs, table
from sluice.sessions.records import CreateSession, Session, is_session_id, new_session_id
from sluice.streams import StreamAddress, get_store
from sluice_wire.chat import ChatSnapshot

LIST_DEFAULT_LIMIT = 20
LIST_MAX_LIMIT = 100
STATUSES = ("ACTIVE", "CLOSED")
CHANNELS = ("in", "out")


def parse_create(raw: Any) -> CreateSession:
    """A create body, held to the limits that keep the session's item within DynamoDB's.

    Raises:
        Unprocessable: ``invalid_session`` with the issues, for a body that is JSON but not a session.
        PayloadTooLarge: ``metadata_too_large`` over SLUICE_MAX_METADATA_BYTES, or
            ``base_payload_too_large`` for a ``triggerConfig.basePayload`` over
            SLUICE_SESSION_BASE_PAYLOAD_MAX_BYTES (as compact JSON).
    """
    try:
        body = CreateSession.model_validate(raw)
    except ValidationError as exc:
        raise Unprocessable(
            "The session is invalid", code="invalid_session", issues=issues_from_pydantic(exc.errors())
        ) from exc
    settings = get_settings()
    if body.metadata is not None:
        payloads.encode_within(
            body.metadata, settings.max_metadata_bytes, what="metadata", code="metadata_too_large"
        )
    payloads.encode_within(
        body.triggerConfig.basePayload,
        settings.session_base_payload_max_bytes,
        what="triggerConfig.basePayload",
        code="base_payload_too_large",
    )
    return body


def create_session(env: Environment, body: CreateSession) -> tuple[Session, bool]:
    """The session and whether it existed already (same environment and externalId). Its first
    run is started here; a retry after a crash at any step starts the same run, never a second.

    Raises:
        ServiceUnavailable: DynamoDB or SQS cannot be reached (retry: nothing is duplicated).
    """
    session_id = new_session_id()
    if body.externalId is not None:
        session_id = table.bind_external_id(env.tenant, body.externalId, session_id)
    session = table.get_session_item(session_id)
    cached = session is not None
    if session is None:
        session = Session(
            id=session_id,
            envId=env.env_id,
            orgId=env.org_id,
            externalId=body.externalId,
            type=body.type,
            taskId=body.taskId,
            tags=body.tags,
            metadata=body.metadata,
            triggerConfig=body.triggerConfig,
            currentRunId=runs.run_id_for(session_id, runs.FIRST_VERSION),
            currentRunVersion=runs.FIRST_VERSION,
            createdAt=datetime.now(UTC),
        )
        try:
            table.put_session(session)
        except ConditionFailed:  # a concurrent create with the same externalId won
            winner = table.get_session_item(session_id)
            if winner is None:  # pragma: no cover - a put that lost to a session now gone
                raise ServiceUnavailable("The session store changed underneath the request; retry") from None
            session, cached = winner, True
    if session.currentRunVersion == runs.FIRST_VERSION and session.currentRunId is not None:
        # Idempotent on the run id: a retry of a create that died before this line starts it now.
        runs.trigger_run(session, session.currentRunId, runs.first_payload(session))
    return session, cached


def get_session(env: Environment, ref: str) -> Session:
    """The session named by its id (``session_...``) or its externalId.

    Raises:
        NotFound: no such session in ``env``.
    """
    session_id = ref if is_session_id(ref) else table.lookup_external_id(env.tenant, ref)
    session = table.get_session_item(session_id) if session_id else None
    if session is None or not owns(env, session.orgId, session.envId):
        raise NotFound(f"Session {ref} not found", code="session_not_found")
    return session


def channel_address(session_id: str, io: str) -> StreamAddress:
    """Raises: NotFound for a channel other than ``in`` and ``out``."""
    if io not in CHANNELS:
        raise NotFound(f"Sessions have channels 'in' and 'out', not {io!r}", code="channel_not_found")
    return StreamAddress("session", session_id, io)


def close_session(env: Environment, ref: str) -> Session:
    """Close the session and end both channels (readers get ``event: end``, writers a 409).
    Idempotent: closing a closed session answers it as it is."""
    session = get_session(env, ref)
    now = datetime.now(UTC)
    table.mark_closed(session.id, now)
    store = get_store()
    for io in CHANNELS:
        store.close(channel_address(session.id, io))
    return get_session(env, session.id)


# --- list ---------------------------------------------------------------------------------------


def _encode_cursor(key: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_cursor(env: Environment, cursor: str, session_type: str | None) -> dict[str, Any]:
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        valid = (
            isinstance(key, dict)
            and key.get("tenant") == {"S": env.tenant}
            and ("tenantType" in key) == (session_type is not None)
            and all(isinstance(v, dict) and isinstance(v.get("S"), str) for v in key.values())
        )
    except (ValueError, binascii.Error, UnicodeDecodeError):
        valid = False
    if not valid:
        raise BadRequest("The cursor is not one this list returned", code="invalid_cursor")
    return key  # type: ignore[no-any-return]


def _page_key(item: dict[str, Any], session_type: str | None) -> dict[str, Any]:
    names = ["pk", "tenant", "createdKey"] + (["tenantType"] if session_type is not None else [])
    return {name: item[name] for name in names}


def parse_limit(value: str | None) -> int:
    if value is None or value == "":
        return LIST_DEFAULT_LIMIT
    if not value.isdigit() or not 1 <= int(value) <= LIST_MAX_LIMIT:
        raise BadRequest(f"limit is a whole number from 1 to {LIST_MAX_LIMIT}", code="invalid_limit")
    return int(value)


def list_sessions(
    env: Environment,
    *,
    session_type: str | None = None,
    tag: str | None = None,
    status: str | None = None,
    limit: int = LIST_DEFAULT_LIMIT,
    cursor: str | None = None,
) -> tuple[list[Session], str | None]:
    """The environment's sessions, newest first, and the cursor of the next page (None at the end).

    The cursor is the key of the last session answered, not DynamoDB's LastEvaluatedKey: a page
    that the filters thinned is topped up from the next query, so the next page starts exactly
    after what the caller saw.

    Raises:
        BadRequest: an unknown status or a cursor this list did not make.
    """
    if status is not None and status not in STATUSES:
        raise BadRequest(f"status is one of {', '.join(STATUSES)}", code="invalid_status")
    start = _decode_cursor(env, cursor, session_type) if cursor else None
    found: list[dict[str, Any]] = []
    more = True
    while len(found) < limit and more:
        items, last = table.query_page(
            env.tenant,
            session_type=session_type,
            tag=tag,
            status=status,
            start_key=start,
            page_size=limit + 1,
        )
        found.extend(items)
        more = last is not None
        start = last
    page = found[:limit]
    next_cursor = None
    if page and (len(found) > limit or more):
        next_cursor = _encode_cursor(_page_key(page[-1], session_type))
    return [table.session_from_item(item) for item in page], next_cursor


# --- snapshot ------------------------------------------------------------------------------------


def snapshot_key(session: Session) -> str:
    return f"sessions/{tenant_key(session.orgId, session.envId)}/{session.id}/snapshot.json"


def put_snapshot(env: Environment, ref: str, body: bytes) -> ChatSnapshot:
    """Store the conversation snapshot (it replaces the previous one).

    Raises:
        NotFound: no such session in ``env``.
        PayloadTooLarge: over SLUICE_SESSION_SNAPSHOT_MAX_BYTES.
        Unprocessable: not a version 1 snapshot.
        ServiceUnavailable: S3 cannot be reached.
    """
    session = get_session(env, ref)
    limit = get_settings().session_snapshot_max_bytes
    if len(body) > limit:
        raise PayloadTooLarge(
            f"The snapshot is {len(body)} bytes; the limit is {limit}", code="snapshot_too_large"
        )
    try:
        snapshot = ChatSnapshot.model_validate_json(body)
    except ValidationError as exc:
        raise Unprocessable(
            "The snapshot is invalid", code="invalid_snapshot", issues=issues_from_pydantic(exc.errors())
        ) from exc
    payloads.store(snapshot_key(session), body)
    return snapshot


def get_snapshot(env: Environment, ref: str) -> bytes:
    """The stored snapshot as it was written.

    Raises:
        NotFound: no such session in ``env``, or no snapshot yet (``snapshot_not_found``).
        ServiceUnavailable: S3 cannot be reached.
    """
    session = get_session(env, ref)
    with aws.unavailable_as_503("snapshot store"):
        try:
            obj = aws.s3().get_object(Bucket=get_settings().payload_bucket, Key=snapshot_key(session))
            return bytes(obj["Body"].read())
        except ClientError as exc:
            if aws.error_code(exc) in aws.S3_MISSING_OBJECT_CODES:
                raise NotFound(f"Session {ref} has no snapshot", code="snapshot_not_found") from exc
            raise
