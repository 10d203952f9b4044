"""The stale sweep: reclaim abandoned DRAINING entries, re-signal lost signals, bounded passes, metrics."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from devstack.handlers import context_for, load_handler
from devstack.template import Stack
from sluice import mollifier
from sluice.config import reload_settings
from sluice.mollifier import MollifierBuffer, get_buffer
from sluice.mollifier.keys import SWEEP_CURSOR, shard_of
from sluice.redis import RedisClient
from tests.conftest import AwsStack
from tests.unit.mollifier.conftest import accept, pop_one

Configure = Callable[..., None]


@pytest.fixture
def swept(aws: AwsStack, buffer_redis: RedisClient, configure: Configure) -> MollifierBuffer:
    configure(mollifier_enabled=True, mollifier_draining_abandon_s=60, mollifier_stale_after_s=60)
    return get_buffer()


def age(buffer: MollifierBuffer, run_id: str, org: str = "org_a", seconds: int = 3600) -> None:
    key = buffer.keys_for(org).entry(run_id)
    micros = int(buffer.client.hget(key, "createdAtMicros") or 0)  # type: ignore[arg-type]
    buffer.client.hset(key, "createdAtMicros", str(micros - seconds * 1_000_000))


def test_reclaims_entries_abandoned_in_draining_and_resignals_them(
    aws: AwsStack, swept: MollifierBuffer
) -> None:
    accept(swept, "run_1")
    accept(swept, "run_2")
    old = pop_one(swept)
    fresh = pop_one(swept)
    assert old is not None and fresh is not None
    swept.client.zadd(swept.keys_for("org_a").draining, {old.runId: 1})
    report = mollifier.sweep()
    assert report.reclaimed == 1
    stored = swept.get_entry("org_a", old.runId)
    assert stored is not None and (stored.status, stored.attempts) == ("QUEUED", 1)
    live = swept.get_entry("org_a", fresh.runId)
    assert live is not None and live.status == "DRAINING", "a live drainer's entry is left alone"
    assert [json.loads(m["Body"])["runId"] for m in aws.receive_all("DrainQueue")] == [old.runId]


def test_a_malformed_abandoned_entry_is_set_aside_and_the_sweep_goes_on(
    aws: AwsStack, swept: MollifierBuffer
) -> None:
    for run_id in ("run_bad", "run_good"):
        accept(swept, run_id)
    popped = [pop_one(swept), pop_one(swept)]
    keys = swept.keys_for("org_a")
    for entry in popped:
        assert entry is not None
        swept.client.zadd(keys.draining, {entry.runId: 1})
    swept.client.hset(keys.entry("run_bad"), "attempts", "not a number")
    report = mollifier.sweep()
    assert report.reclaimed == 1
    good = swept.get_entry("org_a", "run_good")
    assert good is not None and good.status == "QUEUED"
    assert swept.client.zscore(keys.draining, "run_bad") is None, "not looked at again every sweep"
    assert swept.client.exists(keys.entry("run_bad")), "its signal still finds what is left of it"
    assert mollifier.sweep().reclaimed == 0


def test_resignals_the_deficit_when_signals_were_lost(aws: AwsStack, swept: MollifierBuffer) -> None:
    for i in range(3):
        accept(swept, f"run_{i}")  # accepted, but no signal was sent
    assert mollifier.sweep().resignalled == 0, "fresh entries may just be waiting for their signal"
    age(swept, "run_0")
    report = mollifier.sweep()
    assert (report.depth, report.resignalled) == (3, 3)
    assert len(aws.receive_all("DrainQueue")) == 3


def test_does_not_resignal_while_signals_are_in_flight(aws: AwsStack, swept: MollifierBuffer) -> None:
    from sluice.mollifier.signals import send_signal

    accept(swept, "run_0")
    age(swept, "run_0")
    send_signal("run_0", "org_a", "env_a")
    assert mollifier.sweep().resignalled == 0


def test_reports_depth_oldest_age_and_draining(aws: AwsStack, swept: MollifierBuffer) -> None:
    for i in range(4):
        accept(swept, f"run_{i}", env_id=f"env_{i % 2}")
    popped = pop_one(swept)
    for i in range(4):
        if popped is not None and f"run_{i}" != popped.runId:
            age(swept, f"run_{i}", seconds=120)
    report = mollifier.sweep()
    assert (report.depth, report.draining) == (3, 1)
    assert 119 < report.oldest_age_s < 200


def test_work_per_pass_is_bounded_and_the_cursor_covers_every_shard(
    aws: AwsStack, swept: MollifierBuffer, configure: Configure
) -> None:
    configure(mollifier_sweep_max_envs=1)
    buffer = get_buffer()
    orgs = {}
    for i in range(200):
        orgs.setdefault(shard_of(f"org_{i}", buffer.shards), f"org_{i}")
    for org in orgs.values():
        accept(buffer, f"run_{org}", org_id=org)
    seen = 0
    for _ in range(buffer.shards):
        report = mollifier.sweep()
        assert report.envs_inspected <= 1
        seen = report.depth
    assert seen == len(orgs)
    assert int(buffer.client.get(SWEEP_CURSOR) or 0) < buffer.shards  # type: ignore[arg-type]


def test_sweep_handler_emits_buffer_metrics(
    aws: AwsStack, swept: MollifierBuffer, capsys: pytest.CaptureFixture[str]
) -> None:
    accept(swept, "run_1")
    spec = aws.stack.function("stale_sweep")
    result: dict[str, Any] = load_handler(spec)({}, context_for(spec))
    assert result["depth"] == 1
    emf = next(json.loads(line) for line in capsys.readouterr().out.splitlines() if '"BufferDepth"' in line)
    names = {m["Name"] for m in emf["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert {"BufferDepth", "BufferOldestAge", "BufferDraining"} <= names


def test_an_abandoned_entry_waits_no_longer_than_a_drainer_can_live() -> None:
    """No live drainer holds an entry past its function's timeout, so the sweep reclaims right
    after that (with a margin): recovery after killed drainers is this plus the sweep interval
    plus a drain, not 6x the timeout (the 180 s that made runs read as buffered for ~285 s)."""
    timeout = Stack().function("drainer").timeout
    abandon = reload_settings().mollifier_draining_abandon_s
    assert timeout < abandon <= timeout + 15
