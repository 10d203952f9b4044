"""The Sessions table.

Layout (partition key ``pk``):

- ``session_...`` -> a session: ``doc`` (its fixed fields as JSON) and, as attributes of their
  own because they change or are indexed, ``status``, ``closedAt``, ``currentRunId``,
  ``currentRunVersion``, ``tenant`` (``<orgId>/<envId>``, ``sluice.auth.tenant_key``),
  ``tenantType`` (``<tenant>#<type>``), ``tags`` (a string set) and ``createdKey``
  (``<createdAt>#<id>``, so that two sessions created in one instant still order).
- ``ext#<sha256(tenant, externalId)>`` -> ``sessionId``: the binding that makes create idempotent
  on (tenant, externalId). It has no ``tenant``, so it is in neither index.

Indexes (both sparse, newest first by ``createdKey``): ``byTenant`` (``tenant``) for the list,
``byTenantType`` (``tenantType``) for the list filtered by type. Tag and status filter the pages.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sluice import aws
from sluice.auth import tenant_key
from sluice.aws import ConditionFailed, dynamodb_errors
from sluice.config import get_settings
from sluice.sessions.records import Session

BY_TENANT = "byTenant"
BY_TENANT_TYPE = "byTenantType"
_MUTABLE = {"status", "closedAt", "currentRunId", "currentRunVersion"}


def binding_key(tenant: str, external_id: str) -> str:
    return "ext#" + hashlib.sha256(json.dumps([tenant, external_id]).encode("utf-8")).hexdigest()


def created_key(session: Session) -> str:
    # A fixed-width UTC form, so that the string order is the time order.
    return f"{session.createdAt.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S.%fZ')}#{session.id}"


def tenant_type(tenant: str, session_type: str) -> str:
    return f"{tenant}#{session_type}"


def _table() -> str:
    return get_settings().sessions_table


def _item(session: Session) -> dict[str, Any]:
    item: dict[str, Any] = {
        "pk": {"S": session.id},
        "doc": {"S": session.model_dump_json(exclude=_MUTABLE)},
        "tenant": {"S": tenant_key(session.orgId, session.envId)},
        "tenantType": {"S": tenant_type(tenant_key(session.orgId, session.envId), session.type)},
        "createdKey": {"S": created_key(session)},
        "status": {"S": session.status},
        "currentRunVersion": {"N": str(session.currentRunVersion)},
    }
    if session.tags:
        item["tags"] = {"SS": sorted(set(session.tags))}
    if session.currentRunId:
        item["currentRunId"] = {"S": session.currentRunId}
    return item


def session_from_item(item: Mapping[str, Any]) -> Session:
    session = Session.model_validate_json(item["doc"]["S"])
    session.status = item["status"]["S"]
    session.currentRunVersion = int(item["currentRunVersion"]["N"])
    session.currentRunId = item.get("currentRunId", {}).get("S")
    if "closedAt" in item:
        session.closedAt = datetime.fromisoformat(item["closedAt"]["S"])
    return session


def bind_external_id(tenant: str, external_id: str, session_id: str) -> str:
    """Bind ``external_id`` to ``session_id`` unless it is bound already; the bound session id."""
    key = binding_key(tenant, external_id)
    try:
        with dynamodb_errors("session"):
            aws.dynamodb().put_item(
                TableName=_table(),
                Item={"pk": {"S": key}, "sessionId": {"S": session_id}},
                ConditionExpression="attribute_not_exists(pk)",
            )
        return session_id
    except ConditionFailed:
        bound = lookup_external_id(tenant, external_id)
        if bound is None:  # pragma: no cover - bindings are never deleted
            raise
        return bound


def lookup_external_id(tenant: str, external_id: str) -> str | None:
    with dynamodb_errors("session"):
        item = (
            aws.dynamodb()
            .get_item(
                TableName=_table(), Key={"pk": {"S": binding_key(tenant, external_id)}}, ConsistentRead=True
            )
            .get("Item")
        )
    return item["sessionId"]["S"] if item else None


def put_session(session: Session) -> None:
    """Insert ``session`` unless its id exists. Raises ConditionFailed when it does."""
    with dynamodb_errors("session"):
        aws.dynamodb().put_item(
            TableName=_table(), Item=_item(session), ConditionExpression="attribute_not_exists(pk)"
        )


def get_session_item(session_id: str) -> Session | None:
    if not aws.fits_partition_key(session_id):
        return None
    with dynamodb_errors("session"):
        item = (
            aws.dynamodb()
            .get_item(TableName=_table(), Key={"pk": {"S": session_id}}, ConsistentRead=True)
            .get("Item")
        )
    return session_from_item(item) if item and "doc" in item else None


def claim_run(session_id: str, version: int, run_id: str) -> bool:
    """The atomic claim: make ``run_id`` the current run if the version is still ``version``.
    False when another claim won (the version moved)."""
    try:
        with dynamodb_errors("session"):
            aws.dynamodb().update_item(
                TableName=_table(),
                Key={"pk": {"S": session_id}},
                UpdateExpression="SET currentRunId = :run, currentRunVersion = :next",
                ConditionExpression="currentRunVersion = :version",
                ExpressionAttributeValues={
                    ":run": {"S": run_id},
                    ":next": {"N": str(version + 1)},
                    ":version": {"N": str(version)},
                },
            )
        return True
    except ConditionFailed:
        return False


def mark_closed(session_id: str, at: datetime) -> None:
    """Close the session (the first close's time is kept)."""
    with dynamodb_errors("session"):
        aws.dynamodb().update_item(
            TableName=_table(),
            Key={"pk": {"S": session_id}},
            UpdateExpression="SET #status = :closed, closedAt = if_not_exists(closedAt, :at)",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":closed": {"S": "CLOSED"}, ":at": {"S": at.isoformat()}},
        )


def query_page(
    tenant: str,
    *,
    session_type: str | None,
    tag: str | None,
    status: str | None,
    start_key: dict[str, Any] | None,
    page_size: int,
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """One page of the tenant's sessions, newest first, filtered: the raw items and
    DynamoDB's LastEvaluatedKey. A filtered page may hold fewer items than ``page_size``."""
    request: dict[str, Any] = {"TableName": _table(), "ScanIndexForward": False, "Limit": page_size}
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    if session_type is None:
        request["IndexName"] = BY_TENANT
        request["KeyConditionExpression"] = "tenant = :partition"
        values[":partition"] = {"S": tenant}
    else:
        request["IndexName"] = BY_TENANT_TYPE
        request["KeyConditionExpression"] = "tenantType = :partition"
        values[":partition"] = {"S": tenant_type(tenant, session_type)}
    filters = []
    if tag is not None:
        filters.append("contains(tags, :tag)")
        values[":tag"] = {"S": tag}
    if status is not None:
        filters.append("#status = :status")
        names["#status"] = "status"
        values[":status"] = {"S": status}
    if filters:
        request["FilterExpression"] = " AND ".join(filters)
    if names:
        request["ExpressionAttributeNames"] = names
    request["ExpressionAttributeValues"] = values
    if start_key is not None:
        request["ExclusiveStartKey"] = start_key
    with dynamodb_errors("session"):
        reply = aws.dynamodb().query(**request)
    return list(reply.get("Items", [])), reply.get("LastEvaluatedKey")
