"""Queue concurrency: at most ``concurrencyLimit`` EXECUTING runs per queue (per
``concurrencyKey`` when the run has one), enforced by the start's own write.

Where the counters live: in RunsTable, beside the runs, under keys no run id can take
(``queue:["<org/env>","<name>"]``, with the concurrency key as a third element for a key's own
counter; JSON so that no name or key can collide with another's). A queue's item holds the
limit a ``PUT /api/v1/queues/{name}`` set (``concurrencyLimit``), the limit runs last brought in
their trigger options (``limitSeen``) and its ``executing`` count; a key's item only its count.
None of them carries an index's key attributes, so no index (run lists, the reaper's) holds
them, and an item without ``orgId`` is a 404 to ``GET /api/v1/runs/{id}``. One table means no
new table to provision or grant, and the start's run update and its counter update go in one
``TransactWriteItems``: the slot is taken if and only if the run starts.

A started run that took a slot carries ``queueSlot``; every write that moves it out of
EXECUTING (complete, fail, retry, cancel, the reaper's lapsed lease) gives the slot back in the
same transaction. Expiry needs nothing: only a run never started expires, and it holds none.
A run whose queue has no limit never touches a counter: its writes are those of a run with no
queue.

The tenant's queue names are one item too (``queues:["<org/env>"]``, a string set), added to
when a queue is first set or first limits a start, so ``GET /api/v1/queues`` lists them without
a Scan.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from sluice import aws
from sluice.auth import Environment
from sluice.config import get_settings
from sluice.engine import listing
from sluice.engine.models import QUEUE_NAME_MAX_CHARS, Run
from sluice.errors import Unprocessable

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

SLOT = "queueSlot"


class QueueBody(BaseModel):
    """``PUT /api/v1/queues/{name}``: the queue's limit; null removes it."""

    model_config = ConfigDict(extra="forbid")
    concurrencyLimit: Annotated[StrictInt, Field(ge=0, le=100_000)] | None


def queue_key(tenant: str, name: str) -> str:
    return "queue:" + json.dumps([tenant, name], separators=(",", ":"))


def _concurrency_key(tenant: str, name: str, key: str) -> str:
    return "queue:" + json.dumps([tenant, name, key], separators=(",", ":"))


def _registry_key(tenant: str) -> str:
    return "queues:" + json.dumps([tenant], separators=(",", ":"))


def _item(key: str) -> Mapping[str, Any] | None:
    with aws.dynamodb_errors("queue"):
        item: Mapping[str, Any] | None = (
            aws.dynamodb()
            .get_item(TableName=get_settings().runs_table, Key={"runId": {"S": key}}, ConsistentRead=True)
            .get("Item")
        )
    return item


def _number(item: Mapping[str, Any] | None, name: str) -> int | None:
    value = (item or {}).get(name)
    return int(value["N"]) if value and "N" in value else None


@dataclass(frozen=True)
class Slot:
    """The counters a start of ``run`` must take a slot of, and the limit each is held to."""

    limit: int
    counters: tuple[str, ...]  # the last one is the one the limit is checked on
    register: bool  # the queue is not in the tenant's registry yet

    def take(self, run: Run) -> list[TransactWriteItemTypeDef]:
        """The transaction items that take the slot (the last one conditional on the limit)."""
        table = get_settings().runs_table
        items: list[TransactWriteItemTypeDef] = []
        for position, counter in enumerate(self.counters):
            update: dict[str, Any] = {
                "TableName": table,
                "Key": {"runId": {"S": counter}},
                "UpdateExpression": "ADD executing :one",
                "ExpressionAttributeValues": {":one": {"N": "1"}},
            }
            if counter == queue_key(run_tenant(run), run.queue or ""):
                update["UpdateExpression"] += " SET queueName = :name, limitSeen = :limit"
                update["ExpressionAttributeValues"] |= {
                    ":name": {"S": run.queue},
                    ":limit": {"N": str(self.limit)},
                }
            if position == len(self.counters) - 1:
                update["ConditionExpression"] = "attribute_not_exists(executing) OR executing < :limit"
                update["ExpressionAttributeValues"][":limit"] = {"N": str(self.limit)}
            items.append({"Update": update})  # type: ignore[typeddict-item]
        if self.register:
            items.append(_register(run_tenant(run), run.queue or ""))
        return items


def run_tenant(run: Run) -> str:
    return f"{run.orgId}/{run.envId}"


def _counters(run: Run) -> tuple[str, ...]:
    tenant, name = run_tenant(run), run.queue or ""
    queue = queue_key(tenant, name)
    if run.concurrencyKey is None:
        return (queue,)
    # The queue's count (shown by the queue list) and the key's, on which the limit holds.
    return (queue, _concurrency_key(tenant, name, run.concurrencyKey))


def slot_for(run: Run) -> Slot | None:
    """The slot a start of ``run`` must take, or None when its queue has no limit (one read)."""
    if run.queue is None:
        return None
    queue = _item(queue_key(run_tenant(run), run.queue))
    limit = _number(queue, "concurrencyLimit")
    if limit is None:
        limit = run.queueLimit
    if limit is None:
        return None
    return Slot(limit=limit, counters=_counters(run), register=queue is None)


def give_back(run: Run) -> list[TransactWriteItemTypeDef]:
    """The transaction items that free the slot a started ``run`` holds."""
    table = get_settings().runs_table
    return [
        {
            "Update": {
                "TableName": table,
                "Key": {"runId": {"S": counter}},
                # Unconditional: the run's own write (its lease, its status) decides whether the
                # end happens; a condition here could only make a run's end fail.
                "UpdateExpression": "ADD executing :less",
                "ExpressionAttributeValues": {":less": {"N": "-1"}},
            }
        }
        for counter in _counters(run)
    ]


def _register(tenant: str, name: str) -> TransactWriteItemTypeDef:
    return {
        "Update": {
            "TableName": get_settings().runs_table,
            "Key": {"runId": {"S": _registry_key(tenant)}},
            "UpdateExpression": "ADD queueNames :name",
            "ExpressionAttributeValues": {":name": {"SS": [name]}},
        }
    }


def set_limit(env: Environment, name: str, limit: int | None) -> dict[str, Any]:
    """Set (or with None remove) the queue's limit; the queue as the list shows it.

    Raises:
        Unprocessable: a name that no trigger's ``queue.name`` could have (1-256 characters).
    """
    if not 1 <= len(name) <= QUEUE_NAME_MAX_CHARS:
        raise Unprocessable(
            f"A queue name has 1 to {QUEUE_NAME_MAX_CHARS} characters", code="invalid_request"
        )
    table = get_settings().runs_table
    update = (
        "SET queueName = :name, concurrencyLimit = :limit"
        if limit is not None
        else ("SET queueName = :name REMOVE concurrencyLimit")
    )
    values: dict[str, Any] = {":name": {"S": name}}
    if limit is not None:
        values[":limit"] = {"N": str(limit)}
    key = {"runId": {"S": queue_key(env.tenant, name)}}
    queue: TransactWriteItemTypeDef = {
        "Update": {
            "TableName": table,
            "Key": key,
            "UpdateExpression": update,
            "ExpressionAttributeValues": values,
        }
    }
    with aws.dynamodb_errors("queue"):
        aws.dynamodb().transact_write_items(TransactItems=[queue, _register(env.tenant, name)])
    return next(q for q in list_queues(env) if q["name"] == name)


def list_queues(env: Environment) -> list[dict[str, Any]]:
    """Every queue of the tenant: its limit, its executing and its queued (QUEUED or DELAYED)
    runs. The queued counts come from one pass over the tenant's run index (only the runs'
    ``queue`` and ``status`` are read)."""
    registry = _item(_registry_key(env.tenant))
    names = sorted((registry or {}).get("queueNames", {}).get("SS", []))
    if not names:
        return []
    table = get_settings().runs_table
    with aws.dynamodb_errors("queue"):
        found = (
            aws.dynamodb()
            .batch_get_item(
                RequestItems={
                    table: {"Keys": [{"runId": {"S": queue_key(env.tenant, name)}} for name in names]}
                }
            )["Responses"]
            .get(table, [])
        )
    items = {item["queueName"]["S"]: item for item in found if "queueName" in item}
    queued = listing.queued_by_queue(env)
    return [
        {
            "name": name,
            "concurrencyLimit": _number(items.get(name), "concurrencyLimit")
            if _number(items.get(name), "concurrencyLimit") is not None
            else _number(items.get(name), "limitSeen"),
            "executing": _number(items.get(name), "executing") or 0,
            "queued": queued[name],
        }
        for name in names
    ]
