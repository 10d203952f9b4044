"""Phase 2: stream a batch's items in with bounded concurrency, then seal it once (spec §2.5).

A phase 2 may cover all of a batch's items or only some (the client splits large batches over
several requests; a staged ingest may take several invocations). Whatever the split, the batch
seals when the enqueued count reaches runCount, and a request that leaves it short answers
``sealed: false`` so that the client streams again; dedup makes the repeat cheap and exact.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from time import monotonic
from typing import Any

from sluice import aws, observability
from sluice.auth import Environment, owns
from sluice.batches import items, keys, state, store
from sluice.batches.concurrency import bounded_map
from sluice.batches.errors import BatchNotFound, BatchNotPending
from sluice.batches.models import Batch, BatchStatus, IngestResult
from sluice.batches.ndjson import OversizedItem, Parsed
from sluice.batches.runs import complete_if_done
from sluice.config import get_settings
from sluice.errors import Conflict, PayloadTooLarge
from sluice.redis import get_redis

# What a request keeps of its invocation's time to finish the items in flight and answer.
REQUEST_RESERVE_S = 5.0


def load_batch(env: Environment, batch_id: str) -> Batch:
    """The caller's batch. Another environment's batch is "not found", never "forbidden".

    Raises:
        BatchNotFound: no such batch in the caller's environment.
    """
    batch = store.get(batch_id) if keys.is_batch_id(batch_id) else None
    if batch is None or not owns(env, batch.orgId, batch.envId):
        raise BatchNotFound(f"Batch {batch_id} not found")
    return batch


def ingest_items(
    env: Environment,
    batch_id: str,
    lines: Iterable[Parsed],
    *,
    concurrency: int | None = None,
    remaining_s: float | None = None,
) -> IngestResult:
    """Queue every item of ``lines`` for the caller's batch and seal it if that completes it.

    ``remaining_s``: the invocation's time left; the request stops pulling lines at
    ``SLUICE_BATCH_REQUEST_BUDGET_S``, or a reserve before that deadline when it comes sooner.

    Raises:
        BatchNotFound: no such batch in the caller's environment.
        BatchNotPending: the batch was aborted (409; the client must create a new batch).
        InvalidNdjson, InvalidItem: a bad line or item; the items before it stay queued.
        PayloadTooLarge: ``time_budget_exceeded``; the items before it stay queued.
        ServiceUnavailable: a dependency failed; a retry resumes where this one stopped.
    """
    batch = load_batch(env, batch_id)
    if batch.is_retry_success():
        return _sealed(batch, 0, 0)
    if batch.status != BatchStatus.PENDING:
        raise _not_pending(batch)
    budget = get_settings().batch_request_budget_s
    if remaining_s is not None:
        budget = min(budget, remaining_s - REQUEST_RESERVE_S)
    outcomes = ingest_lines(batch, _within(lines, monotonic() + budget), concurrency)
    return finish(batch, outcomes["accepted"], outcomes["deduplicated"])


def ingest_lines(batch: Batch, lines: Iterable[Parsed], concurrency: int | None = None) -> Counter[str]:
    """Process ``lines`` with at most ``concurrency`` items in flight; count the outcomes."""
    # Clients are built lazily and cached per process; build them here, before the worker
    # threads, because boto3's client creation is not thread-safe.
    aws.sqs(), aws.s3(), get_redis()
    width = concurrency or get_settings().batch_ingest_concurrency
    # Groups of items share their round trips (items.process); groups side by side keep at most
    # ``width`` items in flight.
    size = min(items.GROUP, width)
    outcomes: Counter[str] = Counter()
    groups = _groups(_first_of_each_index(lines, outcomes), size)
    # One pool for every group's S3 calls, so that a thread is started once per request, not
    # once per call.
    try:
        with ThreadPoolExecutor(max_workers=width, thread_name_prefix="sluice-s3") as calls:
            process = partial(items.process, batch, pool=calls)
            for counts in bounded_map(groups, process, max(1, width // size)):
                outcomes.update(counts)
    finally:  # the items queued before a bad line count too
        observability.count("BatchItemsAccepted", outcomes["accepted"])
        observability.count("BatchItemsDeduplicated", outcomes["deduplicated"])
    return outcomes


def _within(lines: Iterable[Parsed], deadline: float) -> Iterator[Parsed]:
    """``lines`` until ``deadline`` (monotonic); then a 413, once the lines pulled so far are queued."""
    for number, parsed in enumerate(lines):
        if monotonic() >= deadline:
            raise PayloadTooLarge(
                f"The request ran out of time after {number} lines (SLUICE_BATCH_REQUEST_BUDGET_S); "
                "those are queued. Send the rest in another request (repeats are deduplicated), "
                "in smaller requests, or stage them",
                code="time_budget_exceeded",
            )
        yield parsed


def _groups(lines: Iterable[Parsed], size: int) -> Iterator[list[Parsed]]:
    """``lines`` in lists of ``size``; a failing source still yields the lines before its failure,
    so that they are queued before the error is answered (itertools.batched would drop them)."""
    group: list[Parsed] = []
    failure: Exception | None = None
    try:
        for parsed in lines:
            group.append(parsed)
            if len(group) == size:
                yield group
                group = []
    except Exception as exc:
        failure = exc
    if group:
        yield group
    if failure is not None:
        raise failure


def _first_of_each_index(lines: Iterable[Parsed], outcomes: Counter[str]) -> Iterator[Parsed]:
    """``lines`` without the repeats of an index, each counted as deduplicated.

    Items are processed concurrently, so two lines with one index would race to be enqueued and
    either could win; dropping the repeats here, in line order, makes the first one win.
    """
    seen: set[int] = set()
    for parsed in lines:
        index = _index_of(parsed.value)
        if index is not None:
            if index in seen:
                outcomes["deduplicated"] += 1
                continue
            seen.add(index)
        yield parsed


def _index_of(value: Any) -> int | None:
    if isinstance(value, OversizedItem):
        return value.index
    index = value.get("index") if isinstance(value, dict) else None
    return index if isinstance(index, int) and not isinstance(index, bool) else None


def finish(batch: Batch, accepted: int, deduplicated: int) -> IngestResult:
    """Seal the batch if every item is enqueued; otherwise say how far it got."""
    enqueued = state.enqueued_count(batch.id)
    if enqueued < batch.runCount:
        # The batch may have moved on without us: sealed by a concurrent request, or finished and
        # cleaned up by batch_runs (which empties the sets, so the count reads low).
        current = store.get(batch.id) or batch
        if current.is_retry_success():
            return _sealed(current, accepted, deduplicated)
        if current.status == BatchStatus.ABORTED:
            raise _not_pending(current)
        return IngestResult(
            id=batch.id,
            itemsAccepted=accepted,
            itemsDeduplicated=deduplicated,
            sealed=False,
            enqueuedCount=enqueued,
            runCount=batch.runCount,
        )
    now = datetime.now(UTC)
    if store.seal(batch, now):
        sealed = batch.model_copy(update={"status": BatchStatus.PROCESSING, "sealed": True, "sealedAt": now})
        complete_if_done(batch.id, sealed)
        return _sealed(sealed, accepted, deduplicated)
    current = store.get(batch.id) or batch
    if current.is_retry_success():
        return _sealed(current, accepted, deduplicated)
    raise Conflict(
        f"Batch {batch.id} is in unexpected state (status: {current.status}, sealed: {current.sealed}). "
        "Cannot seal batch.",
        code="batch_unexpected_state",
    )


def _sealed(batch: Batch, accepted: int, deduplicated: int) -> IngestResult:
    return IngestResult(
        id=batch.id,
        itemsAccepted=accepted,
        itemsDeduplicated=deduplicated,
        sealed=True,
        enqueuedCount=batch.runCount,
        runCount=batch.runCount,
    )


def _not_pending(batch: Batch) -> BatchNotPending:
    reason = f" ({batch.error})" if batch.error else ""
    return BatchNotPending(
        f"Batch {batch.id} is not in PENDING status (current: {batch.status}){reason}; create a new batch"
    )
