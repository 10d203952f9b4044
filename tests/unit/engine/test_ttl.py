"""ttl: a run not started within its ttl becomes EXPIRED, once, and a start that races it loses
cleanly (time injected, never slept)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest.mock import patch

from sluice import engine
from sluice.engine import TriggerBody, lifecycle
from sluice.engine.models import Run


def later(minutes: float) -> datetime:
    return datetime.now(UTC) + timedelta(minutes=minutes)


def test_a_run_not_started_within_its_ttl_expires(api: Any, finals: list[Run]) -> None:
    run_id = api.trigger(ttl="10m")
    untouched = api.trigger(ttl="1h")
    no_ttl = api.trigger()

    assert lifecycle.expire_due(later(9)) == 0
    assert lifecycle.expire_due(later(11)) == 1

    run = api.get(run_id)
    assert run["status"] == "EXPIRED" and run["expiredAt"] is not None
    assert [r.id for r in finals] == [run_id], "final: its streams end"
    assert {api.get(r)["status"] for r in (untouched, no_ttl)} == {"QUEUED"}
    assert "ttlShard" not in api.item(run_id) and "dispatchPending" not in api.item(run_id)
    start = api.post(run_id, "start")
    assert (start.status, start.json()["code"]) == (409, "run_finished")
    assert lifecycle.expire_due(later(11)) == 0, "expired once"


def test_a_delayed_run_expires_too(api: Any) -> None:
    run_id = api.trigger(delay="1h", ttl="30m")
    assert lifecycle.expire_due(later(31)) == 1
    assert api.get(run_id)["status"] == "EXPIRED"


def test_a_start_after_the_ttl_passed_expires_the_run_before_any_sweep(api: Any) -> None:
    run_id = api.trigger(ttl="10m")

    with patch.object(lifecycle, "_now", lambda: later(11)):
        start = api.post(run_id, "start")

    assert (start.status, start.json()["code"]) == (409, "run_expired")
    assert api.get(run_id)["status"] == "EXPIRED"


def test_a_started_run_no_longer_expires(api: Any) -> None:
    run_id = api.trigger(ttl="10m")
    api.start(run_id)
    assert "ttlShard" not in api.item(run_id)
    assert lifecycle.expire_due(later(11)) == 0
    assert api.get(run_id)["status"] == "EXECUTING"


def test_a_buffered_trigger_drained_after_its_ttl_is_created_expired_and_never_sent(api: Any) -> None:
    # As the drainer replays a buffered trigger: with its run id and original creation time.
    body = TriggerBody.model_validate({"options": {"ttl": "1m"}})
    created = engine.trigger(
        api.tenant.env, "work", body, created_at=datetime.now(UTC) - timedelta(minutes=2)
    )

    assert api.get(created.id)["status"] == "EXPIRED"
    assert [m["runId"] for m in api.aws.bodies("RunQueue")] == []


def race_start_and_sweep(api: Any, run_id: str) -> dict[str, Any]:
    """A start that sees the last microsecond before the ttl and a sweep at the ttl itself, at
    once: each alone would win."""
    ttl_at = datetime.fromisoformat(api.item(run_id)["ttlAt"]["S"])
    results: dict[str, Any] = {}
    barrier = threading.Barrier(2)

    def start() -> None:
        with patch.object(lifecycle, "_now", lambda: ttl_at - timedelta(microseconds=1)):
            barrier.wait()
            results["start"] = api.post(run_id, "start").status

    def sweep() -> None:
        barrier.wait()
        results["expired"] = lifecycle.expire_due(ttl_at)

    threads = [threading.Thread(target=start), threading.Thread(target=sweep)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_expiry_racing_a_start_has_one_winner_every_time(api: Any) -> None:
    for _ in range(50):
        run_id = api.trigger(ttl="10m")

        results = race_start_and_sweep(api, run_id)

        assert (results["start"] == 200) != (results["expired"] == 1), results
        assert api.get(run_id)["status"] == ("EXECUTING" if results["start"] == 200 else "EXPIRED")
