"""The stale sweep: repair what a lost signal or a dead drainer left behind, and measure the buffer.

Each invocation inspects shards from a cursor (``mollifier:sweep:cursor``) until it has looked at
``SLUICE_MOLLIFIER_SWEEP_MAX_ENVS`` environments, and keeps each shard's last figures in
``mollifier:sweep:stats``; the metrics are the sum over all shards' last figures, so they are at
most one cycle old. Per shard:

- an entry DRAINING longer than ``SLUICE_MOLLIFIER_DRAINING_ABANDON_S`` belongs to a drainer
  invocation that died (a Lambda timeout or crash): it is requeued and re-signalled (the rq
  registry model). The engine's idempotent create makes this safe even if the run was created.
- signals lost between accept and SQS (the send failed after the entry was stored): when the
  buffer holds more queued entries than DrainQueue holds signals and an entry has waited longer
  than ``SLUICE_MOLLIFIER_STALE_AFTER_S``, the deficit is re-signalled. A surplus signal is
  harmless: it pops nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_lambda_powertools import Logger
from pydantic import BaseModel

from sluice.config import Settings
from sluice.mollifier.buffer import MollifierBuffer, text, text_map, texts
from sluice.mollifier.errors import MalformedEntry
from sluice.mollifier.keys import SWEEP_CURSOR, SWEEP_STATS, ShardKeys
from sluice.mollifier.models import BufferEntry
from sluice.mollifier.signals import carried, send_signal, signals_in_flight

logger = Logger(service="sluice", child=True)


class ShardStats(BaseModel):
    depth: int = 0
    draining: int = 0
    oldest_micros: int = 0
    oldest: tuple[str, str, str] | None = None  # runId, orgId, envId of the oldest queued entry


@dataclass(frozen=True)
class SweepReport:
    shards_inspected: int
    envs_inspected: int
    depth: int
    draining: int
    oldest_age_s: float
    reclaimed: int
    resignalled: int


def _now_micros(buffer: MollifierBuffer) -> int:
    seconds, micros = buffer.client.time()
    return int(seconds) * 1_000_000 + int(micros)


def _queued_envs(buffer: MollifierBuffer, keys: ShardKeys, limit: int) -> list[tuple[str, str]]:
    orgs = texts(buffer.client.lrange(keys.orgs, 0, -1))
    pipe = buffer.client.pipeline(transaction=False)
    for org_id in orgs:
        pipe.lrange(keys.org_envs(org_id), 0, -1)
    pairs = [(org, env) for org, envs in zip(orgs, pipe.execute(), strict=True) for env in texts(envs)]
    return pairs[:limit]


def inspect_shard(buffer: MollifierBuffer, shard: int, max_envs: int) -> tuple[ShardStats, int]:
    """Depth, draining count and oldest queued entry of a shard; returns (stats, envs inspected)."""
    keys = ShardKeys(shard)
    envs = _queued_envs(buffer, keys, max_envs)
    pipe = buffer.client.pipeline(transaction=False)
    for org_id, env_id in envs:
        pipe.llen(keys.queue(org_id, env_id))
        pipe.lindex(keys.queue(org_id, env_id), -1)
    pipe.zcard(keys.draining)
    replies = pipe.execute()
    draining = int(replies.pop())
    heads = [(org, env, int(replies[2 * i]), replies[2 * i + 1]) for i, (org, env) in enumerate(envs)]
    pipe = buffer.client.pipeline(transaction=False)
    live = [(org, env, run_id) for org, env, _, run_id in heads if run_id]
    for _, _, run_id in live:
        pipe.hget(keys.entry(run_id), "createdAtMicros")
    oldest: tuple[int, tuple[str, str, str]] | None = None
    for (org, env, run_id), micros in zip(live, pipe.execute(), strict=True):
        if micros and (oldest is None or int(micros) < oldest[0]):
            oldest = (int(micros), (run_id, org, env))
    stats = ShardStats(
        depth=sum(length for _, _, length, _ in heads),
        draining=draining,
        oldest_micros=oldest[0] if oldest else 0,
        oldest=oldest[1] if oldest else None,
    )
    return stats, len(envs)


def reclaim_abandoned(buffer: MollifierBuffer, shard: int, cutoff_ms: int, limit: int) -> int:
    """Requeue and re-signal entries DRAINING since before ``cutoff_ms``; returns how many."""
    keys = ShardKeys(shard)
    reclaimed = 0
    for run_id in texts(buffer.client.zrangebyscore(keys.draining, "-inf", cutoff_ms, start=0, num=limit)):
        fields = text_map(buffer.client.hgetall(keys.entry(run_id)))
        if not fields:
            buffer.client.zrem(keys.draining, run_id)
            continue
        try:
            entry = BufferEntry.from_hash(fields)
        except MalformedEntry:
            # Nothing can requeue or re-signal it; its own signal carries the trigger and makes the
            # run (see ``drain``). Left in DRAINING, it stopped every later sweep at this point.
            logger.exception("mollifier.abandoned_entry_malformed", extra={"runId": run_id})
            buffer.client.zrem(keys.draining, run_id)
            continue
        if buffer.requeue(entry, popped_before_ms=cutoff_ms):
            send_signal(entry.runId, entry.orgId, entry.envId, entry=carried(entry))
            logger.warning("mollifier.reclaimed_abandoned", extra={"runId": run_id})
            reclaimed += 1
    return reclaimed


def _load_stats(buffer: MollifierBuffer) -> list[ShardStats]:
    """Every shard's last figures (a shard beyond the current shard count no longer exists)."""
    return [
        ShardStats.model_validate_json(raw)
        for shard, raw in text_map(buffer.client.hgetall(SWEEP_STATS)).items()
        if int(shard) < buffer.shards
    ]


def run_sweep(buffer: MollifierBuffer, settings: Settings) -> SweepReport:
    """One bounded pass; see the module docstring."""
    now_us = _now_micros(buffer)
    cutoff_ms = now_us // 1000 - settings.mollifier_draining_abandon_s * 1000
    start = int(text(buffer.client.get(SWEEP_CURSOR)) or 0) % buffer.shards
    budget = settings.mollifier_sweep_max_envs
    repairs = settings.mollifier_sweep_max_repairs
    inspected_envs = reclaimed = shards_inspected = 0
    for step in range(buffer.shards):
        if inspected_envs >= budget:
            break
        shard = (start + step) % buffer.shards
        reclaimed += reclaim_abandoned(buffer, shard, cutoff_ms, max(0, repairs - reclaimed))
        stats, envs = inspect_shard(buffer, shard, budget - inspected_envs)
        inspected_envs += envs
        shards_inspected += 1
        buffer.client.hset(SWEEP_STATS, str(shard), stats.model_dump_json())
    buffer.client.set(SWEEP_CURSOR, (start + shards_inspected) % buffer.shards)

    all_stats = _load_stats(buffer)
    depth = sum(s.depth for s in all_stats)
    oldest_micros = min((s.oldest_micros for s in all_stats if s.oldest_micros), default=0)
    stale_before = now_us - settings.mollifier_stale_after_s * 1_000_000
    stale = [s.oldest for s in all_stats if s.oldest and 0 < s.oldest_micros < stale_before]
    resignalled = 0
    if stale:
        deficit = depth - signals_in_flight()
        for i in range(max(0, min(deficit, repairs - reclaimed))):
            run_id, org_id, env_id = stale[i % len(stale)]
            entry = buffer.get_entry(org_id, run_id)
            send_signal(run_id, org_id, env_id, entry=carried(entry) if entry else None)
            resignalled += 1
        if resignalled:
            logger.warning("mollifier.resignalled", extra={"count": resignalled, "depth": depth})
    return SweepReport(
        shards_inspected=shards_inspected,
        envs_inspected=inspected_envs,
        depth=depth,
        draining=sum(s.draining for s in all_stats),
        oldest_age_s=(now_us - oldest_micros) / 1_000_000 if oldest_micros else 0.0,
        reclaimed=reclaimed,
        resignalled=resignalled,
    )
