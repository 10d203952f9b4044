"""Phase-2 ingest: wall time against concurrency, peak memory against concurrency x item size,
and staged-ingest throughput. Prints figures and ratios; never passes or fails on speed.

    .venv/bin/python bench/batch_ingest.py

The reference measured a 150-item batch whose payloads each took 10 ms to offload at 1739 / 192
/ 57 ms for concurrency 1 / 10 / 50 (spec §2.10). Here: redis-server, moto in-process, the real
phase-2 code, and an injected store latency in front of moto's S3.
"""

from __future__ import annotations

import json
import os
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path
from typing import Any
from unittest.mock import patch

sys.path[:0] = [
    str(Path(__file__).resolve().parent.parent),
    str(Path(__file__).resolve().parent.parent / "layers/sluice"),
]

from bench.mollifier_common import configure, local_stack  # noqa: E402
from sluice import aws as sluice_aws  # noqa: E402
from sluice.auth import Environment  # noqa: E402
from sluice.batches import CreateBatchRequest, create_batch, ingest_items, keys, parse_body, staged  # noqa: E402
from sluice.config import get_settings  # noqa: E402
from sluice.engine import payloads  # noqa: E402


def ndjson(count: int, payload_bytes: int) -> bytes:
    blob = "x" * payload_bytes
    return b"".join(
        json.dumps({"index": i, "task": "bench", "payload": {"blob": blob}}).encode() + b"\n"
        for i in range(count)
    )


@contextmanager
def stand_ins(store_s: float, *, moto: bool) -> Iterator[None]:
    """``store_s`` of latency in front of every payload offload. With ``moto`` the object then goes
    to moto's S3 and the item to moto's SQS; without, both are dropped after the latency, because
    moto's in-process emulation is CPU-bound Python that the GIL serialises (it measures moto, not
    the waits on the network that concurrency overlaps) and its S3 keeps every object in memory."""
    real_store = payloads.store

    def slow_store(key: str, body: bytes) -> None:
        time.sleep(store_s)
        if moto:
            real_store(key, body)

    with ExitStack() as stubs:
        stubs.enter_context(patch.object(payloads, "store", slow_store))
        if not moto:
            stubs.enter_context(patch.object(sluice_aws.sqs(), "send_message_batch", drop_sends))
        yield


def drop_sends(**_: Any) -> dict[str, list[Any]]:
    """SendMessageBatch answered as a success, the messages dropped."""
    return {"Successful": [], "Failed": []}


def new_batch(env: Environment, count: int, staged_: bool = False) -> str:
    return create_batch(env, CreateBatchRequest(runCount=count, staged=staged_)).batch.id


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return (time.perf_counter() - start) * 1000, result


def concurrency_table(
    env: Environment, count: int, latency_s: float, widths: list[int], *, moto: bool
) -> None:
    body = ndjson(count, 2048)
    where = "then moto S3 + SQS" if moto else "S3 and SQS calls beyond it dropped"
    print(
        f"\n{count} items, every payload offloaded: {latency_s * 1000:.0f} ms injected store latency, {where}"
    )
    print(f"{'concurrency':>12} {'wall ms':>10} {'vs 1':>8} {'ms/item':>9}")
    base = None
    with stand_ins(latency_s, moto=moto):
        for width in widths:
            batch_id = new_batch(env, count)
            ms, result = timed(partial(ingest_items, env, batch_id, parse_body(body), concurrency=width))
            assert result.sealed and result.itemsAccepted == count
            base = base or ms
            print(f"{width:>12} {ms:>10.0f} {base / ms:>7.1f}x {ms / count:>9.2f}")


def memory_table(env: Environment, count: int, item_bytes: int, widths: list[int]) -> None:
    body = ndjson(count, item_bytes)
    size = f"{len(body) / 1e6:.1f} MB body, already in memory"
    print(f"\npeak memory: {count} items of {item_bytes // 1024} KiB ({size})")
    print(f"{'concurrency':>12} {'peak MB':>9} {'c x item MB':>12} {'peak / (c x item)':>18}")
    with stand_ins(0.02, moto=False):
        for width in widths:
            batch_id = new_batch(env, count)
            tracemalloc.start()
            ingest_items(env, batch_id, parse_body(body), concurrency=width)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            bound = width * item_bytes
            print(f"{width:>12} {peak / 1e6:>9.1f} {bound / 1e6:>12.1f} {peak / bound:>18.2f}")


def staged_throughput(env: Environment, count: int) -> None:
    batch_id = new_batch(env, count, staged_=True)
    body = ndjson(count, 200)
    key = keys.staging(env.tenant, batch_id)
    sluice_aws.s3().put_object(Bucket=get_settings().staging_bucket, Key=key, Body=body)
    # moto's SQS scans its whole queue on every send (quadratic over 20 000 items); SQS does not.
    with patch.object(sluice_aws.sqs(), "send_message_batch", drop_sends):
        job = staged.StagedJob(env.tenant, batch_id, get_settings().staging_bucket, key, None)
        ms, result = timed(lambda: staged.run(job, time.monotonic() + 900))
    assert result is not None and not isinstance(result, staged.StagedJob) and result.sealed
    rate, mb = count / (ms / 1000), len(body) / 1e6
    print(f"\nstaged ingest: {count} items ({mb:.1f} MB) in {ms / 1000:.1f} s = {rate:,.0f} items/s")
    print("  (S3 ranged reads, parser, Redis dedup, DynamoDB seal real; SQS sends not timed, see above)")


def main() -> None:
    with local_stack():
        # The budget is lifted: one-at-a-time rows against moto on a busy machine outlast the default
        # 20 s, and a request cut short measures the budget, not the ingest.
        configure(
            payload_offload_bytes=1024,
            batch_rate_limit_max=10**6,
            batch_item_max_bytes=3 * 1024 * 1024,
            batch_request_budget_s=900,
        )
        os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
        env = Environment(org_id="org_bench", env_id="env_bench")
        concurrency_table(env, 150, 0.010, [1, 10, 50], moto=False)
        print("  reference (150 items, 10 ms): 1739 / 192 / 57 ms -> 9.1x / 30.5x")
        concurrency_table(env, 200, 0.020, [1, 10, 50], moto=False)
        concurrency_table(env, 200, 0.020, [1, 10, 50], moto=True)
        memory_table(env, 100, 256 * 1024, [1, 10, 50])
        staged_throughput(env, 20_000)


if __name__ == "__main__":
    main()
