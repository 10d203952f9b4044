"""The trip evaluator: fixed window, hold, re-arm, the ~2x boundary, isolation, atomicity.

Its state is two keys whose lifetimes Redis keeps (PX expiries). Instead of sleeping through a
window or a hold, ``advance`` moves Redis's clock for them: it takes ``ms`` off every key's
remaining TTL, and deletes a key whose TTL runs out, which is what the wait would have done.
"""

from __future__ import annotations

import threading

from sluice.auth import tenant_key
from sluice.mollifier import MollifierBuffer
from sluice.mollifier.models import TripResult
from sluice.redis import RedisClient


def advance(client: RedisClient, ms: int) -> None:
    """Let ``ms`` milliseconds pass for every expiring key (on each node of a cluster)."""
    for key in client.scan_iter():
        ttl = client.pttl(key)
        if ttl > ms:
            client.pexpire(key, ttl - ms)
        elif ttl >= 0:
            client.delete(key)


def trip(
    buffer: MollifierBuffer, env: str = "env_a", *, window: int = 5000, threshold: int = 3, hold: int = 500
) -> TripResult:
    return buffer.evaluate_trip("org_a", env, window_ms=window, threshold=threshold, hold_ms=hold)


def test_under_threshold_counts_without_tripping(buffer: MollifierBuffer) -> None:
    assert [trip(buffer) for _ in range(3)] == [
        TripResult(1, False),
        TripResult(2, False),
        TripResult(3, False),
    ]


def test_crossing_the_threshold_sets_the_hold_marker(buffer: MollifierBuffer) -> None:
    for _ in range(3):
        trip(buffer)
    assert trip(buffer) == TripResult(4, True)
    assert buffer.client.exists(buffer.keys_for("org_a").tripped(tenant_key("org_a", "env_a")))


def test_hold_outlives_the_window_then_the_env_resets(buffer: MollifierBuffer) -> None:
    for _ in range(3):
        trip(buffer, window=300, threshold=2, hold=3000)
    advance(buffer.client, 400)  # the 300 ms window has expired; the 3 s hold has not
    assert trip(buffer, window=300, threshold=2, hold=3000) == TripResult(1, True)
    advance(buffer.client, 3100)
    assert trip(buffer, window=300, threshold=2, hold=3000) == TripResult(1, False)


def test_every_over_threshold_call_re_arms_the_hold(buffer: MollifierBuffer) -> None:
    tripped_key = buffer.keys_for("org_a").tripped(tenant_key("org_a", "env_a"))
    for _ in range(4):
        trip(buffer, window=10_000, threshold=2, hold=3000)
    advance(buffer.client, 1000)
    assert buffer.client.pttl(tripped_key) <= 2000
    trip(buffer, window=10_000, threshold=2, hold=3000)
    assert buffer.client.pttl(tripped_key) > 2000, "the hold was refreshed, not left to run out"


def test_window_expires_and_the_counter_resets_without_traffic(buffer: MollifierBuffer) -> None:
    trip(buffer, window=50)
    trip(buffer, window=50)
    advance(buffer.client, 80)
    assert trip(buffer, window=50).count == 1


def test_about_twice_the_threshold_passes_at_a_window_boundary(buffer: MollifierBuffer) -> None:
    threshold = 5
    passed = 0
    for _ in range(threshold):
        passed += not trip(buffer, window=60, threshold=threshold).tripped
    advance(buffer.client, 80)  # a fixed window ends: the next window counts from zero
    for _ in range(threshold):
        passed += not trip(buffer, window=60, threshold=threshold).tripped
    assert passed == 2 * threshold


def test_tripping_one_env_does_not_affect_another(buffer: MollifierBuffer) -> None:
    for _ in range(5):
        trip(buffer, "env_a")
    assert trip(buffer, "env_a").tripped
    assert trip(buffer, "env_b") == TripResult(1, False)


def test_incr_is_atomic_under_100_concurrent_calls(buffer: MollifierBuffer) -> None:
    counts: list[int] = []
    lock = threading.Lock()

    def call() -> None:
        result = trip(buffer, window=60_000, threshold=1000)
        with lock:
            counts.append(result.count)

    threads = [threading.Thread(target=call) for _ in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(counts) == list(range(1, 101))
