"""``GET /api/v1/runs``: a tenant's runs, newest first, filtered, a page at a time, from indexes.

Every run item carries, from its create on, the keys of four global secondary indexes of
RunsTable, each sorted by ``createdKey`` (the creation instant in UTC, then the run id, so that
order is total and stable):

- ``RunsByTenant``: ``tenant`` (``sluice.auth.tenant_key``: organization and environment);
- ``RunsByTask``: ``tenantTask``, the tenant and (a hash of) the task id;
- ``RunsByBatch`` (sparse, batch items only): ``tenantBatch``, the tenant and the batch id's hash;
- ``RunsByIdempotencyKey`` (sparse): ``tenantIdem``, the tenant and the key's hash.

A list reads one of them with a Query (never a Scan): the most selective its filters allow
(idempotency key, then batch, then a single task, else the tenant), with the ``createdAt`` range
as the sort key condition, and the other filters (status, tags, several tasks) as a filter
expression. A run's status is not part of any index key, on purpose: it changes on every
transition, and each change would move the run between index partitions. The indexes project
what a list row shows (``listDoc``, the immutable fields as JSON, and the lifecycle attributes),
so a page is one Query, with no read of the run items (whose payload may be 256 KiB).

The cursor is the position of the last (or first) row answered, bound to the index and its hash
key, so that it cannot page another tenant's or another filter's runs. Pages are stable under
concurrent inserts: a run created later sorts before every cursor already handed out.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sluice import aws
from sluice.auth import Environment, tenant_key
from sluice.config import get_settings
from sluice.engine.durations import parse_duration
from sluice.engine.models import Run
from sluice.errors import BadRequest

TENANT_INDEX, TASK_INDEX = "RunsByTenant", "RunsByTask"
BATCH_INDEX, IDEMPOTENCY_INDEX = "RunsByBatch", "RunsByIdempotencyKey"
# Each index's hash key attribute.
HASH_KEYS = {
    TENANT_INDEX: "tenant",
    TASK_INDEX: "tenantTask",
    BATCH_INDEX: "tenantBatch",
    IDEMPOTENCY_INDEX: "tenantIdem",
}
SORT_KEY = "createdKey"
LIST_DOC = "listDoc"
TAGS = "tags"
PAGE_DEFAULT, PAGE_MAX = 25, 100
# The reference platform's run statuses: a filter may name any (those Sluice never sets match
# nothing), and nothing else.
RUN_STATUSES = (
    "PENDING_VERSION", "QUEUED", "DEQUEUED", "EXECUTING", "WAITING", "COMPLETED", "CANCELED",
    "FAILED", "CRASHED", "SYSTEM_FAILURE", "DELAYED", "EXPIRED", "TIMED_OUT",
)  # fmt: skip
_QUEUED = frozenset({"QUEUED", "DELAYED", "PENDING_VERSION", "DEQUEUED"})
_FAILED = frozenset({"FAILED", "CRASHED", "SYSTEM_FAILURE", "EXPIRED", "TIMED_OUT"})
_FINISHED = _FAILED | {"COMPLETED", "CANCELED"}


def _joined(tenant: str, value: str) -> str:
    # A fixed-width hash of the value: a task id (256 characters of up to 4 bytes) or an
    # idempotency key (2048 characters) beside the tenant could pass an index key's 2048 bytes.
    # Fixed width also keeps the pair unambiguous whatever characters either holds.
    return f"{tenant}|{hashlib.sha256(value.encode('utf-8')).hexdigest()}"


def _instant(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def index_attributes(run: Run) -> dict[str, Any]:
    """The list indexes' attributes of a new run item (see the module docstring)."""
    tenant = tenant_key(run.orgId, run.envId)
    # Not the idempotency key: 2048 characters, up to 12 KB as JSON, that the item cannot hold
    # twice beside the largest payload (``Settings.run_item_max_bytes``); GET shows it.
    summary = {
        "createdAt": _instant(run.createdAt),
        "batchId": run.batchId,
        "ttl": run.ttl,
        # The queue list's queued counts read it (engine.queues).
        "queue": run.queue,
    }
    attributes: dict[str, Any] = {
        HASH_KEYS[TENANT_INDEX]: {"S": tenant},
        HASH_KEYS[TASK_INDEX]: {"S": _joined(tenant, run.taskId)},
        SORT_KEY: {"S": f"{_instant(run.createdAt)}#{run.id}"},
        LIST_DOC: {"S": json.dumps({k: v for k, v in summary.items() if v is not None})},
    }
    if run.batchId is not None:
        attributes[HASH_KEYS[BATCH_INDEX]] = {"S": _joined(tenant, run.batchId)}
    if run.idempotencyKey is not None:
        attributes[HASH_KEYS[IDEMPOTENCY_INDEX]] = {"S": _joined(tenant, run.idempotencyKey)}
    if run.tags:
        attributes[TAGS] = {"L": [{"S": tag} for tag in run.tags]}
    return attributes


# --- the request ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunFilter:
    statuses: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    batch_id: str | None = None
    idempotency_key: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None


@dataclass(frozen=True)
class PageRequest:
    size: int = PAGE_DEFAULT
    after: str | None = None
    before: str | None = None


def _values(query: Mapping[str, str], name: str) -> tuple[str, ...]:
    # The reference's SDK sends several values comma-separated (filter[status]=QUEUED,EXECUTING).
    return tuple(v for v in (query.get(name) or "").split(",") if v)


def _time(query: Mapping[str, str], name: str) -> datetime | None:
    value = query.get(name)
    if not value:
        return None
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
        # In UTC now: year 1 with a positive offset is before the first instant UTC can show.
        return at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        message = f"{name} is not an ISO-8601 time (got {value[:40]!r})"
        raise BadRequest(message, code="invalid_filter") from None


def parse_list_query(query: Mapping[str, str], now: datetime) -> tuple[RunFilter, PageRequest]:
    """The filters and page of a list request's query string (the reference platform's names).

    Raises:
        BadRequest: ``invalid_status``, ``invalid_filter`` (a time or period that does not parse),
            ``invalid_limit`` (``page[size]`` outside 1-100), ``invalid_cursor`` (both cursors).
    """
    statuses = tuple(s.upper() for s in _values(query, "filter[status]"))
    if unknown := [s for s in statuses if s not in RUN_STATUSES]:
        raise BadRequest(
            f"filter[status] names no run status: {', '.join(unknown)[:200]}", code="invalid_status"
        )
    created_from = _time(query, "filter[createdAt][from]")
    if period := query.get("filter[createdAt][period]"):
        try:
            created_from = now - parse_duration(period)
        except ValueError as exc:
            raise BadRequest(f"filter[createdAt][period]: {exc}", code="invalid_filter") from None
    run_filter = RunFilter(
        statuses=statuses,
        tasks=_values(query, "filter[taskIdentifier]"),
        tags=_values(query, "filter[tag]"),
        batch_id=query.get("filter[batch]") or query.get("filter[batchId]") or None,
        idempotency_key=query.get("filter[idempotencyKey]") or None,
        created_from=created_from,
        created_to=_time(query, "filter[createdAt][to]"),
    )
    raw_size = query.get("page[size]") or ""
    if raw_size and not (raw_size.isascii() and raw_size.isdigit() and 1 <= int(raw_size) <= PAGE_MAX):
        raise BadRequest(f"page[size] is a whole number from 1 to {PAGE_MAX}", code="invalid_limit")
    page = PageRequest(
        size=int(raw_size) if raw_size else PAGE_DEFAULT,
        after=query.get("page[after]") or None,
        before=query.get("page[before]") or None,
    )
    if page.after and page.before:
        raise BadRequest("Give page[after] or page[before], not both", code="invalid_cursor")
    return run_filter, page


# --- the query ------------------------------------------------------------------------------------
@dataclass
class _Plan:
    index: str
    hash_value: str
    key_condition: str
    filter_parts: list[str] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)

    def kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "TableName": get_settings().runs_table,
            "IndexName": self.index,
            "KeyConditionExpression": self.key_condition,
            "ExpressionAttributeNames": self.names,
            "ExpressionAttributeValues": self.values,
        }
        if self.filter_parts:
            kwargs["FilterExpression"] = " AND ".join(self.filter_parts)
        return kwargs

    def any_of(self, attribute: str, values: tuple[str, ...], prefix: str, *, contains: bool = False) -> None:
        self.names[f"#{attribute}"] = attribute
        terms = []
        for i, value in enumerate(values):
            self.values[f":{prefix}{i}"] = {"S": value}
            terms.append(f"contains(#{attribute}, :{prefix}{i})" if contains else f":{prefix}{i}")
        if contains:
            self.filter_parts.append("(" + " OR ".join(terms) + ")")
        else:
            self.filter_parts.append(f"#{attribute} IN ({', '.join(terms)})")


def _plan(env: Environment, run_filter: RunFilter) -> _Plan:
    tenant = env.tenant
    # The most selective index the filters allow; the remaining filters filter its query.
    wanted: dict[str, str] = {}
    if run_filter.idempotency_key is not None:
        wanted[IDEMPOTENCY_INDEX] = _joined(tenant, run_filter.idempotency_key)
    if run_filter.batch_id is not None:
        wanted[BATCH_INDEX] = _joined(tenant, run_filter.batch_id)
    if len(run_filter.tasks) == 1:
        wanted[TASK_INDEX] = _joined(tenant, run_filter.tasks[0])
    index, hash_value = next(iter(wanted.items()), (TENANT_INDEX, tenant))
    plan = _Plan(
        index,
        hash_value,
        "#hash = :hash",
        names={"#hash": HASH_KEYS[index]},
        values={":hash": {"S": hash_value}},
    )
    for other, value in wanted.items():
        if other != index:
            plan.names[f"#{HASH_KEYS[other]}"] = HASH_KEYS[other]
            plan.values[f":{HASH_KEYS[other]}"] = {"S": value}
            plan.filter_parts.append(f"#{HASH_KEYS[other]} = :{HASH_KEYS[other]}")
    low = _instant(run_filter.created_from) if run_filter.created_from else None
    # "~" sorts after every run id character, so the whole last instant is in range.
    high = _instant(run_filter.created_to) + "#~" if run_filter.created_to else None
    if low and high:
        plan.key_condition += " AND #sort BETWEEN :low AND :high"
    elif low:
        plan.key_condition += " AND #sort >= :low"
    elif high:
        plan.key_condition += " AND #sort <= :high"
    if low or high:
        plan.names["#sort"] = SORT_KEY
    if low:
        plan.values[":low"] = {"S": low}
    if high:
        plan.values[":high"] = {"S": high}
    if run_filter.statuses:
        plan.any_of("status", run_filter.statuses, "st")
    if len(run_filter.tasks) > 1:
        plan.any_of("taskId", run_filter.tasks, "task")
    if run_filter.tags:
        plan.any_of(TAGS, run_filter.tags, "tag", contains=True)
    return plan


def _cursor_of(plan: _Plan, item: Mapping[str, Any]) -> str:
    position = {
        "i": plan.index,
        "h": hashlib.sha256(plan.hash_value.encode()).hexdigest()[:16],
        "s": item[SORT_KEY]["S"],
        "r": item["runId"]["S"],
    }
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


def _start_key(plan: _Plan, cursor: str) -> dict[str, Any]:
    """The index key a cursor names. Raises BadRequest ``invalid_cursor``: not one of this list."""
    try:
        position = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        valid = (
            isinstance(position, dict)
            and position.get("i") == plan.index
            and position.get("h") == hashlib.sha256(plan.hash_value.encode()).hexdigest()[:16]
            and isinstance(position.get("s"), str)
            and isinstance(position.get("r"), str)
            and aws.fits_partition_key(position["r"])
        )
    except (ValueError, binascii.Error, UnicodeDecodeError):
        valid = False
    if not valid:
        raise BadRequest("The cursor is not one this list returned", code="invalid_cursor")
    return {
        "runId": {"S": position["r"]},
        HASH_KEYS[plan.index]: {"S": plan.hash_value},
        SORT_KEY: {"S": position["s"]},
    }


def _collect(plan: _Plan, want: int, start: dict[str, Any] | None, *, newest_first: bool) -> list[Any]:
    """Up to ``want`` matching index items from ``start`` on; a page thinned by the filter
    expression is topped up from the next Query."""
    kwargs = plan.kwargs() | {"ScanIndexForward": not newest_first, "Limit": want}
    found: list[Any] = []
    while len(found) < want:
        if start is not None:
            kwargs["ExclusiveStartKey"] = start
        with aws.dynamodb_errors("run"):
            page = aws.dynamodb().query(**kwargs)
        found.extend(page.get("Items", []))
        start = page.get("LastEvaluatedKey")
        if start is None:
            break
    return found[:want]


@dataclass(frozen=True)
class RunPage:
    rows: list[dict[str, Any]]
    next: str | None
    previous: str | None

    def to_api(self) -> dict[str, Any]:
        pagination = {k: v for k, v in (("next", self.next), ("previous", self.previous)) if v}
        return {"data": self.rows, "pagination": pagination}


def list_runs(env: Environment, run_filter: RunFilter, page: PageRequest) -> RunPage:
    """One page of the tenant's runs, newest first, and the cursors around it.

    Raises:
        BadRequest: ``invalid_cursor``: a cursor this list (tenant, index, filter) did not make.
        ServiceUnavailable: DynamoDB could not be reached.
    """
    plan = _plan(env, run_filter)
    if page.before is not None:
        # Back from the first row of a later page: oldest first from there, then turned around.
        items = _collect(plan, page.size + 1, _start_key(plan, page.before), newest_first=False)
        shown = list(reversed(items[: page.size]))
        more_before = len(items) > page.size
        return RunPage(
            [_row(env, item) for item in shown],
            next=_cursor_of(plan, shown[-1]) if shown else None,
            previous=_cursor_of(plan, shown[0]) if shown and more_before else None,
        )
    start = _start_key(plan, page.after) if page.after is not None else None
    items = _collect(plan, page.size + 1, start, newest_first=True)
    shown = items[: page.size]
    return RunPage(
        [_row(env, item) for item in shown],
        next=_cursor_of(plan, shown[-1]) if len(items) > page.size else None,
        previous=_cursor_of(plan, shown[0]) if shown and start is not None else None,
    )


def _time_of(item: Mapping[str, Any], name: str) -> str | None:
    value = item.get(name, {}).get("S")
    return str(value) if value else None


def queued_by_queue(env: Environment) -> Counter[str]:
    """The tenant's QUEUED and DELAYED runs per queue: one pass over RunsByTenant reading only
    ``listDoc`` of the runs in those statuses."""
    counts: Counter[str] = Counter()
    kwargs: dict[str, Any] = {
        "TableName": get_settings().runs_table,
        "IndexName": TENANT_INDEX,
        "KeyConditionExpression": "#tenant = :tenant",
        "FilterExpression": "#status IN (:queued, :delayed)",
        "ProjectionExpression": "#doc",
        "ExpressionAttributeNames": {
            "#tenant": HASH_KEYS[TENANT_INDEX],
            "#status": "status",
            "#doc": LIST_DOC,
        },
        "ExpressionAttributeValues": {
            ":tenant": {"S": env.tenant},
            ":queued": {"S": "QUEUED"},
            ":delayed": {"S": "DELAYED"},
        },
    }
    while True:
        with aws.dynamodb_errors("run"):
            page = aws.dynamodb().query(**kwargs)
        for item in page.get("Items", []):
            queue = json.loads(item[LIST_DOC]["S"]).get("queue")
            if queue is not None:
                counts[queue] += 1
        if "LastEvaluatedKey" not in page:
            return counts
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _row(env: Environment, item: Mapping[str, Any]) -> dict[str, Any]:
    """A list row in the reference platform's shape (its SDK's ``ListRunResponseItem``)."""
    summary = json.loads(item[LIST_DOC]["S"])
    status = item["status"]["S"]
    started, finished = _time_of(item, "startedAt"), _time_of(item, "completedAt")
    times = [t for t in (summary["createdAt"], started, finished, _time_of(item, "canceledAt")) if t]
    duration_ms = 0
    if started and finished:
        delta = datetime.fromisoformat(finished) - datetime.fromisoformat(started)
        duration_ms = max(0, int(delta.total_seconds() * 1000))
    return {
        "id": item["runId"]["S"],
        "status": status,
        "taskIdentifier": item["taskId"]["S"],
        "batchId": summary.get("batchId"),
        "isQueued": status in _QUEUED,
        "isExecuting": status == "EXECUTING",
        "isWaiting": status == "WAITING",
        "isCompleted": status in _FINISHED,
        "isSuccess": status == "COMPLETED",
        "isFailed": status in _FAILED,
        "isCancelled": status == "CANCELED",
        "isTest": False,
        "createdAt": summary["createdAt"],
        # The latest of the run's recorded instants (the item keeps no separate update time).
        "updatedAt": max(times, key=lambda t: datetime.fromisoformat(t.replace("Z", "+00:00"))),
        "startedAt": started,
        "finishedAt": finished,
        "delayedUntil": _time_of(item, "delayUntil"),
        "ttl": summary.get("ttl"),
        "expiredAt": _time_of(item, "expiredAt"),
        "tags": [tag["S"] for tag in item.get(TAGS, {}).get("L", [])],
        "attempt": int(item.get("attempt", {}).get("N", "0")),
        "costInCents": 0,
        "baseCostInCents": 0,
        "durationMs": duration_ms,
        "env": {"id": env.env_id, "name": env.env_id, "organizationId": env.org_id},
    }
