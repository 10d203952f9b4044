"""Lua calls that are not idempotent run once per call although redis-py sends a call again when
its reply timed out: a TCP proxy in front of a real redis-server drops the reply, the client
times out and retries, and the retry must answer what the first run did, having changed nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from devstack.services import start_redis
from sluice import engine
from sluice.auth import Environment
from sluice.batches import ratelimit, state
from sluice.config import get_settings, reload_settings
from sluice.mollifier import get_buffer
from sluice.mollifier.intake import mollify
from sluice.mollifier.keys import ShardKeys
from sluice.redis import get_redis, reset_redis
from sluice.streams import StreamAddress, get_store
from sluice.streams.keys import StreamKeys
from tests.conftest import AwsStack
from tests.redis_proxy import RedisProxy
from tests.unit.mollifier.conftest import snapshot


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[RedisProxy]:
    server = start_redis()
    relay = RedisProxy(int(server.url.rsplit(":", 1)[1].split("/")[0]))
    monkeypatch.setenv("SLUICE_REDIS_URL", relay.url)
    monkeypatch.setenv("SLUICE_REDIS_CLUSTER", "false")
    monkeypatch.setenv("SLUICE_REDIS_SOCKET_TIMEOUT_MS", "200")
    monkeypatch.setenv("SLUICE_MOLLIFIER_SHARDS", "1")
    reload_settings()
    reset_redis()
    yield relay
    reset_redis()
    relay.close()
    server.stop()


def dropping_the_first_reply(proxy: RedisProxy, after: int = 0) -> None:
    """Warm the connection (its handshake's replies pass), then drop the next script's reply.
    The script must have run once before: else the reply dropped is Redis' NOSCRIPT."""
    get_redis().ping()
    proxy.drop_reply(after)


def warm_buffer() -> None:
    """Load the pop and requeue scripts by running them, leaving the buffer empty."""
    buffer = get_buffer()
    accept("run_warm")
    [entry] = buffer.pop_batch(1)
    buffer.requeue(entry)
    [entry] = buffer.pop_batch(1)
    buffer.ack(entry)


def accept(run_id: str) -> None:
    get_buffer().accept(
        run_id=run_id, org_id="org_a", env_id="env_a", snapshot=snapshot(), created_at=datetime.now(UTC)
    )


def test_a_retried_pop_pops_no_more_entries(proxy: RedisProxy) -> None:
    buffer = get_buffer()
    warm_buffer()
    for i in range(3):
        accept(f"run_{i}")
    dropping_the_first_reply(proxy, after=1)  # the pipeline of LLENs passes, the pop's reply not
    popped = buffer.pop_batch(1)
    assert proxy.dropped == 1
    assert [entry.runId for entry in popped] == ["run_0"]
    draining = buffer.client.zrange(ShardKeys(0).draining, 0, -1)
    assert draining == ["run_0"], "the retry answered the first pop instead of popping again"
    assert [e.runId for e in buffer.pop_batch(5)] == ["run_1", "run_2"]


def test_a_retried_trip_evaluation_counts_the_trigger_once(proxy: RedisProxy) -> None:
    buffer = get_buffer()
    buffer.evaluate_trip("org_a", "env_warm", window_ms=1000, threshold=10, hold_ms=1000)
    dropping_the_first_reply(proxy)
    result = buffer.evaluate_trip("org_a", "env_a", window_ms=60_000, threshold=10, hold_ms=1000)
    assert proxy.dropped == 1
    assert result.count == 1
    assert buffer.evaluate_trip("org_a", "env_a", window_ms=60_000, threshold=10, hold_ms=1000).count == 2


def test_a_retried_requeue_still_answers_the_attempt(proxy: RedisProxy) -> None:
    buffer = get_buffer()
    warm_buffer()
    accept("run_0")
    [entry] = buffer.pop_batch(1)
    dropping_the_first_reply(proxy)
    assert buffer.requeue(entry) == 1, "0 would mean: not requeued, so no fresh signal is sent"
    assert proxy.dropped == 1


def test_a_retried_accept_still_sends_the_drain_signal(aws: AwsStack, proxy: RedisProxy) -> None:
    env = Environment(org_id="org_a", env_id="env_a")
    buffer = get_buffer()
    mollify(buffer, env, engine.prepare(env, "hello", engine.parse_trigger_body({"payload": 0}, env.tenant)))
    aws.receive_all("DrainQueue")
    prepared = engine.prepare(env, "hello", engine.parse_trigger_body({"payload": 1}, env.tenant))
    dropping_the_first_reply(proxy)
    result = mollify(buffer, env, prepared)
    assert proxy.dropped == 1 and result is not None
    signals = [json.loads(m["Body"])["runId"] for m in aws.receive_all("DrainQueue")]
    assert prepared.run.id in signals, "an accepted entry with no signal waits for the stale sweep"


def test_a_retried_token_bucket_takes_the_tokens_once(proxy: RedisProxy) -> None:
    ratelimit.consume("env_warm", 1)
    dropping_the_first_reply(proxy)
    assert ratelimit.consume("env_a", 100).remaining == get_settings().batch_rate_limit_max - 100
    assert proxy.dropped == 1


def test_a_retried_mark_still_counts_the_items_as_new(proxy: RedisProxy) -> None:
    state.mark_enqueued("batch_warm", [0])
    dropping_the_first_reply(proxy)
    assert state.mark_enqueued("batch_a", [0, 1, 2]) == 3
    assert proxy.dropped == 1


def test_retried_stream_appends_and_closes_happen_once(proxy: RedisProxy) -> None:
    store = get_store()
    address = StreamAddress.run("run_a", "out")
    store.append(StreamAddress.run("run_warm", "out"), "env_a", [("", "0")])
    store.close(StreamAddress.run("run_warm", "out"))
    dropping_the_first_reply(proxy)
    result = store.append(address, "env_a", [("", "1")])
    assert proxy.dropped == 1 and len(result.ids) == 1
    dropping_the_first_reply(proxy)
    assert store.close(address) is not None, "None would mean: closed already"
    assert proxy.dropped == 2
    assert get_redis().xlen(StreamKeys(address).data) == 2, "one chunk and the end entry"
