"""batch_runs, the status page, and the seal-timeout reaper."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devstack.handlers import context_for, load_handler
from sluice.batches import keys, reaper, runs, store
from sluice.batches.models import BatchStatus
from tests.unit.batches.conftest import BatchApi, item, run_ids_on_run_queue
from tests.unit.batches.test_ingest import force, status


def test_every_item_becomes_its_run_and_the_batch_completes(api: BatchApi) -> None:
    batch_id = api.create_id(5)
    api.items(batch_id, [item(i, task=f"t{i}") for i in range(5)])
    assert api.run_items() == []
    got = status(api, batch_id)
    assert got["status"] == "COMPLETED" and got["processedCount"] == 5 and got["failedCount"] == 0
    assert got["runs"] == [keys.run_id(batch_id, i) for i in range(5)]
    assert sorted(run_ids_on_run_queue(api.aws)) == sorted(got["runs"])
    for i, run_id in enumerate(got["runs"]):
        run = api.call("GET", f"/api/v1/runs/{run_id}", headers=api.tenant.headers).json()
        assert (run["taskId"], run["payload"], run["batchId"], run["batchIndex"]) == (
            f"t{i}",
            {"n": i},
            batch_id,
            i,
        )


def test_batch_runs_is_idempotent_on_redelivery(api: BatchApi) -> None:
    batch_id = api.create_id(4)
    api.items(batch_id, [item(i) for i in range(4)])
    messages = api.queued_items()
    api.run_items(messages[:2])
    api.run_items(messages[:2])  # redelivered before the rest arrive
    assert status(api, batch_id)["processedCount"] == 2
    api.run_items(messages)  # and everything again
    got = status(api, batch_id)
    assert got["status"] == "COMPLETED" and got["processedCount"] == 4
    assert sorted(run_ids_on_run_queue(api.aws)) == sorted(got["runs"])


def test_completion_happens_exactly_once(api: BatchApi, monkeypatch: pytest.MonkeyPatch) -> None:
    completions: list[str] = []
    real = store.complete

    def counted(batch: Any, processed: int, failed: int, now: datetime) -> bool:
        won = real(batch, processed, failed, now)
        if won:
            completions.append(batch.id)
        return won

    monkeypatch.setattr(runs.store, "complete", counted)
    batch_id = api.create_id(3)
    api.items(batch_id, [item(i) for i in range(3)])
    messages = api.queued_items()
    api.run_items(messages)
    api.run_items(messages)
    assert runs.complete_if_done(batch_id) is False
    assert completions == [batch_id]


def test_items_processed_before_the_seal_complete_the_batch_when_it_seals(api: BatchApi) -> None:
    batch_id = api.create_id(3)
    api.items(batch_id, [item(0), item(1)])
    api.run_items()
    api.items(batch_id, [item(2)])  # seals; item 2 not processed yet
    assert status(api, batch_id)["status"] == "PROCESSING"
    api.run_items()
    assert status(api, batch_id)["status"] == "COMPLETED"


def test_last_item_processed_before_the_seal_completes_at_the_seal(
    api: BatchApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sluice.batches import ingest

    batch_id = api.create_id(2)
    real_seal = store.seal

    def seal_after_all_processed(batch: Any, now: datetime) -> bool:
        api.run_items()  # batch_runs finishes every item while the batch is still PENDING
        assert status(api, batch_id)["status"] == "PENDING"
        return real_seal(batch, now)

    monkeypatch.setattr(ingest.store, "seal", seal_after_all_processed)
    assert api.items(batch_id, [item(0), item(1)]).json()["sealed"] is True
    assert status(api, batch_id)["status"] == "COMPLETED"


def test_engine_unavailable_reports_the_item_for_redelivery(
    api: BatchApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import EndpointConnectionError

    from sluice import aws as sluice_aws

    batch_id = api.create_id(2)
    api.items(batch_id, [item(0), item(1)])
    messages = api.queued_items()
    ddb = sluice_aws.dynamodb()
    real = ddb.put_item
    calls = itertools.count(1)  # next() is atomic: the items are handled on threads

    def flaky(**kwargs: Any) -> Any:
        if next(calls) == 2:
            raise EndpointConnectionError(endpoint_url="https://dynamodb")
        return real(**kwargs)

    monkeypatch.setattr(ddb, "put_item", flaky)
    failures = api.run_items(messages)
    assert len(failures) == 1
    failed = [m for m in messages if m["MessageId"] == failures[0]["itemIdentifier"]]
    assert status(api, batch_id)["processedCount"] == 1
    assert api.run_items(failed) == []
    assert status(api, batch_id)["status"] == "COMPLETED"


@pytest.mark.parametrize(
    ("code", "redelivered"),
    [("ProvisionedThroughputExceededException", True), ("ValidationException", False)],
)
def test_a_throttled_write_redelivers_the_item_and_a_refused_one_fails_it(
    api: BatchApi, monkeypatch: pytest.MonkeyPatch, code: str, redelivered: bool
) -> None:
    from botocore.exceptions import ClientError

    from sluice import aws as sluice_aws

    batch_id = api.create_id(1)
    api.items(batch_id, [item(0)])
    messages = api.queued_items()
    ddb = sluice_aws.dynamodb()
    real = ddb.put_item
    calls = itertools.count(1)

    def refuses_once(**kwargs: Any) -> Any:
        if next(calls) == 1:
            response: Any = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": 400}}
            raise ClientError(response, "PutItem")
        return real(**kwargs)

    monkeypatch.setattr(ddb, "put_item", refuses_once)
    failures = api.run_items(messages)
    got = status(api, batch_id)
    if redelivered:
        assert len(failures) == 1 and got["processedCount"] == 0
        return
    assert failures == [] and (got["status"], got["failedCount"]) == ("PARTIAL_FAILED", 1)
    run = api.call("GET", f"/api/v1/runs/{keys.run_id(batch_id, 0)}", headers=api.tenant.headers).json()
    assert run["status"] == "FAILED" and run["error"]["code"] == runs.INVALID_ITEM


def test_duplicate_idempotency_keys_across_items_still_complete(api: BatchApi) -> None:
    batch_id = api.create_id(2)
    api.items(batch_id, [item(0, idempotencyKey="same"), item(1, idempotencyKey="same")])
    api.run_items()
    got = status(api, batch_id)
    assert got["status"] == "COMPLETED" and got["processedCount"] == 2
    assert len(run_ids_on_run_queue(api.aws)) == 1


def test_status_pages_run_ids_in_index_order(api: BatchApi, configure: Callable[..., None]) -> None:
    batch_id = api.create_id(1500, staged=True)
    first = status(api, batch_id)
    assert len(first["runs"]) == 1000 and first["nextRunsOffset"] == 1000
    second = api.get(batch_id, query="runsOffset=1000").json()
    assert second["runs"] == [keys.run_id(batch_id, i) for i in range(1000, 1500)]
    assert second["nextRunsOffset"] is None


# --- the seal-timeout reaper ---------------------------------------------------------------------


def test_reaper_aborts_an_unsealed_batch_after_the_timeout(api: BatchApi) -> None:
    batch_id = api.create_id(3)
    api.items(batch_id, [item(0)])
    assert reaper.reap(datetime.now(UTC) + timedelta(seconds=1700)) == 0
    assert reaper.reap(datetime.now(UTC) + timedelta(seconds=1801)) == 1
    got = status(api, batch_id)
    assert got["status"] == "ABORTED" and "never fully created" in got["error"]
    res = api.items(batch_id, [item(1), item(2)])
    assert res.status == 409
    assert reaper.reap(datetime.now(UTC) + timedelta(seconds=1801)) == 0  # out of the index now


def test_reaper_leaves_sealed_batches_alone(api: BatchApi) -> None:
    batch_id = api.create_id(1)
    api.items(batch_id, [item(0)])
    assert reaper.reap(datetime.now(UTC) + timedelta(hours=2)) == 0
    assert status(api, batch_id)["status"] == "PROCESSING"


def test_reaper_vs_concurrent_seal_one_wins_and_the_other_changes_nothing(
    api: BatchApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sluice.batches import ingest

    # The seal lands between the reaper's query and its conditional abort.
    sealed_id = api.create_id(1)
    real_abort = store.abort

    def seal_first(batch: Any, now: datetime, reason: str) -> bool:
        assert api.items(batch.id, [item(0)]).json()["sealed"] is True
        return real_abort(batch, now, reason)

    with monkeypatch.context() as patch:
        patch.setattr(reaper.store, "abort", seal_first)
        assert reaper.reap(datetime.now(UTC) + timedelta(hours=1)) == 0
    assert status(api, sealed_id)["status"] == "PROCESSING"

    # The abort lands between phase 2's count and its conditional seal.
    aborted_id = api.create_id(1)
    real_seal = store.seal

    def abort_first(batch: Any, now: datetime) -> bool:
        assert reaper.reap(datetime.now(UTC) + timedelta(hours=1)) == 1
        return real_seal(batch, now)

    monkeypatch.setattr(ingest.store, "seal", abort_first)
    res = api.items(aborted_id, [item(0)])
    assert res.status == 409
    assert status(api, aborted_id)["status"] == "ABORTED"


def test_reaper_handler_runs_on_its_schedule_event(api: BatchApi) -> None:
    spec = api.aws.stack.function("batch_reaper")
    assert [e.type for e in spec.events] == ["Schedule"]
    assert load_handler(spec)({"source": "aws.events"}, context_for(spec)) == {"aborted": 0}


def test_items_of_an_aborted_batch_do_not_complete_it(api: BatchApi) -> None:
    batch_id = api.create_id(1)
    api.items(batch_id, [item(0)])
    force(api, batch_id, status=BatchStatus.ABORTED)
    api.run_items()
    assert status(api, batch_id)["status"] == "ABORTED"
    assert status(api, batch_id)["processedCount"] == 1
