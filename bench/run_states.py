"""DynamoDB writes per run for each state the engine can put a run in, base table and indexes.

Each transition runs against moto with template.yaml's RunsTable (its seven global secondary
indexes) and is counted two ways: the items the engine's write requests wrote (botocore's
``before-parameter-build``; a transaction's items count once each, and DynamoDB bills them twice,
so the keyed create's 2 is 4 write units), and the index writes
DynamoDB bills for them, derived from the item before and after against each index's keys and
projection (an entry added, removed or changed is one write; a changed key is two). Write units
assume items under 1 KB per index entry and ignore the base item's size (a run with a 256 KiB
payload bills more units for its base write, not more writes).

    .venv/bin/python -m bench.run_states
"""

from __future__ import annotations

import contextlib
import io
import json
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from unittest.mock import patch

from bench.mollifier_common import local_stack
from sluice import aws as sluice_aws
from sluice import engine
from sluice.auth import Environment
from sluice.config import get_settings
from sluice.engine import TriggerBody, lifecycle, listing, queues
from sluice.errors import Conflict

WRITES = {"PutItem": 1, "UpdateItem": 1, "DeleteItem": 1}


@contextmanager
def counting() -> Iterator[Counter[str]]:
    calls: Counter[str] = Counter()

    def on_call(model: Any, params: Mapping[str, Any], **_: Any) -> None:
        # A transaction is one request that writes each of its items (and bills each twice).
        calls[model.name] += len(params.get("TransactItems", [])) if model.name == "TransactWriteItems" else 1

    client = sluice_aws.dynamodb()
    # The API's parameters (``before-call`` sees them serialized).
    client.meta.events.register("before-parameter-build", on_call, unique_id="bench-run-states")
    try:
        yield calls
    finally:
        client.meta.events.unregister("before-parameter-build", unique_id="bench-run-states")


def indexes(stack: Any) -> list[tuple[str, list[str], set[str] | None]]:
    """(name, key attributes, projected attributes or None for ALL) of RunsTable's indexes."""
    table = stack.resources["RunsTable"]["Properties"]
    found = []
    for gsi in table["GlobalSecondaryIndexes"]:
        keys = [k["AttributeName"] for k in gsi["KeySchema"]]
        projection = gsi["Projection"]
        kind = projection["ProjectionType"]
        projected = None if kind == "ALL" else set(projection.get("NonKeyAttributes", []))
        found.append((gsi["IndexName"], keys, projected))
    return found


def _entry(
    item: Mapping[str, Any] | None, keys: list[str], projected: set[str] | None
) -> dict[str, Any] | None:
    """An index's entry of ``item`` (None: the sparse index holds none)."""
    if item is None or any(k not in item for k in keys):
        return None
    names = set(item) if projected is None else {*keys, "runId", *projected}
    return {n: item[n] for n in names if n in item}


def index_writes(stack: Any, before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> int:
    writes = 0
    for _, keys, projected in indexes(stack):
        old, new = _entry(before, keys, projected), _entry(after, keys, projected)
        if old == new:
            continue
        if old is not None and new is not None and any(old[k] != new[k] for k in keys):
            writes += 2  # a key change: delete the old entry, put the new one
        else:
            writes += 1
    return writes


def item(run_id: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = (
        sluice_aws.dynamodb()
        .get_item(TableName=get_settings().runs_table, Key={"runId": {"S": run_id}})
        .get("Item")
    )
    return found


def measure(stack: Any, run_id: str, action: Callable[[], Any]) -> tuple[int, int]:
    before = item(run_id)
    with counting() as calls:
        action()
    writes = sum(n for op, n in calls.items() if op in WRITES or op == "TransactWriteItems")
    return writes, index_writes(stack, before, item(run_id))


def queue_steps(
    env: Environment,
    created: Callable[[str, dict[str, Any]], str],
    step: Callable[[str, str, Callable[[], Any]], None],
    bodies: tuple[lifecycle.StartBody, lifecycle.CompleteBody, lifecycle.FailBody],
) -> None:
    """A start and each end of a run whose queue has no limit, a limit, a limit and a key: the
    writes of the queue's counter items (engine.queues) beside the run's. A complete or cancel
    of a limited run first tries the plain write, whose lost condition shows the slot (one more
    write request, billed as a write)."""
    start, done, fail = bodies
    for label, options in (
        ("queue, no limit", {"queue": "plain"}),
        ("queue limit", {"queue": {"name": "emails", "concurrencyLimit": 100}}),
        ("limit + key", {"queue": {"name": "keyed", "concurrencyLimit": 100}, "concurrencyKey": "k"}),
    ):
        first = created("", options)
        lifecycle.start(env, first, start)  # the queue's first start also registers it
        lifecycle.complete(env, first, done)
        a, b, c = (created("", options) for _ in range(3))
        step(f"start [{label}]", a, partial(lifecycle.start, env, a, start))
        lifecycle.start(env, b, start)
        lifecycle.start(env, c, start)
        step(f"complete [{label}]", a, partial(lifecycle.complete, env, a, done))
        step(f"fail (retry) [{label}]", b, partial(lifecycle.fail, env, b, fail))
        step(f"cancel EXECUTING [{label}]", c, partial(lifecycle.cancel, env, c))
    queues.set_limit(env, "full", 1)
    lifecycle.start(env, created("", {"queue": "full"}), start)
    refused = created("", {"queue": "full"})

    def refuse() -> None:
        with contextlib.suppress(Conflict):
            lifecycle.start(env, refused, start)

    # The failed transaction (its 2 items billed) and the write that re-sends the run later.
    step("start refused (concurrency_limited)", refused, refuse)


def main() -> None:
    rows: list[tuple[str, int, int]] = []
    with contextlib.redirect_stdout(io.StringIO()), local_stack() as (stack, _, _):
        env = Environment(org_id="org_bench", env_id="env_bench")

        def created(name: str, options: dict[str, Any]) -> str:
            run_id = engine.new_run_id()
            body = TriggerBody.model_validate({"payload": {"n": 1}, "options": options})
            measured = measure(stack, run_id, lambda: engine.trigger(env, "hello", body, run_id=run_id))
            if name:  # unnamed: a run made only for a later step
                rows.append((name, *measured))
            return run_id

        def step(name: str, run_id: str, action: Callable[[], Any]) -> None:
            rows.append((name, *measure(stack, run_id, action)))

        queued = created("create QUEUED", {})
        created("create QUEUED, idempotency key", {"idempotencyKey": "k"})
        parked = created("create DELAYED 30d (parked)", {"delay": "30d"})
        expiring = created("create QUEUED with ttl", {"ttl": "10m"})
        token = "t" * 24
        start = lifecycle.StartBody(leaseToken=token)
        step("start -> EXECUTING", queued, lambda: lifecycle.start(env, queued, start))
        step("heartbeat", queued, lambda: lifecycle.heartbeat(env, queued, token))
        fail = lifecycle.FailBody.model_validate({"leaseToken": token, "error": "x"})
        step("fail -> QUEUED (retry)", queued, lambda: lifecycle.fail(env, queued, fail))
        with patch.object(lifecycle, "_now", lambda: datetime.now(UTC) + timedelta(minutes=5)):
            step("start again", queued, lambda: lifecycle.start(env, queued, start))
        done = lifecycle.CompleteBody(leaseToken=token, output={"ok": True})
        step("complete -> COMPLETED", queued, lambda: lifecycle.complete(env, queued, done))
        to_cancel = created("create QUEUED (to cancel)", {})
        rows.pop()
        step("cancel QUEUED -> CANCELED", to_cancel, lambda: lifecycle.cancel(env, to_cancel))
        executing = created("create (to cancel executing)", {})
        rows.pop()
        lifecycle.start(env, executing, start)
        step("cancel EXECUTING -> CANCELED", executing, lambda: lifecycle.cancel(env, executing))
        later = datetime.now(UTC) + timedelta(minutes=11)
        step("ttl passed -> EXPIRED", expiring, lambda: lifecycle.expire_due(later))
        due = datetime.now(UTC) + timedelta(days=30)
        step("parked released (dispatchSeq+1)", parked, lambda: lifecycle.release_due(due))
        queue_steps(env, created, step, (start, done, fail))
        filters, page = listing.parse_list_query({"page[size]": "25"}, datetime.now(UTC))
        with counting() as reads:
            listing.list_runs(env, filters, page)
    print("DynamoDB writes per run, by transition (base = write requests; index = GSI writes billed)")
    print(f"{'transition':<40} {'base':>5} {'index':>6} {'total':>6}")
    for name, base, index in rows:
        print(f"{name:<40} {base:>5} {index:>6} {base + index:>6}")
    print(f"list page (25 rows): {dict(reads)} (one Query; no run item read)")
    print(json.dumps({name: {"base": base, "index": index} for name, base, index in rows}))


if __name__ == "__main__":
    main()
