"""Realtime streams on devstack, side by side in one run: the streamed (Function URL) and the
long-poll (HTTP API) transports; a reader that re-reads ``$`` against Sluice's; mints per chunk
with and without the SDK's credential cache. Prints figures; never passes or fails on speed.

    .venv/bin/python -m bench.streams [--events 5000] [--chunks 1000]

Latency is from the writer's append returning to the reader's SDK yielding the event (one
clock, one machine). The writer appends to Redis directly in bursts of 10 every 10 ms (1 kHz),
so the figures are the readers' own; the HTTP append path is in the mint/chunk section.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path[:0] = [
    str(Path(__file__).resolve().parent.parent),
    str(Path(__file__).resolve().parent.parent / "layers/sluice"),
    str(Path(__file__).resolve().parent.parent / "clients/python"),
]

from devstack.testing.launcher import DevStack, start_devstack  # noqa: E402
from sluice.auth import tenant_key  # noqa: E402
from sluice.streams import StreamAddress, StreamStore  # noqa: E402
from sluice_client import RetryOptions, Sluice  # noqa: E402
from tests.stream_load import BurstyWriter, dollar_against_resuming  # noqa: E402

ORG, ENV = "org_bench", "env_bench"
TENANT = tenant_key(ORG, ENV)
QUICK = RetryOptions(max_attempts=10, min_delay_s=0.005, randomize=False)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def transport_run(
    stack: DevStack, key: str, transport: str, events: int, rate: float | None
) -> dict[str, Any]:
    stream_url = str(stack.info["streamUrl"]) if transport == "streamed" else None
    with Sluice(stack.api_url, key, stream_url=stream_url) as client:
        run_id = client.trigger("bench").id
        client.streams.credentials(run_id, "out")
        writer = BurstyWriter(
            StreamStore(stack.redis),
            StreamAddress.run(run_id, "out"),
            TENANT,
            events,
            rate=rate,
            burst=10 if rate else 100,
        )
        received: dict[int, float] = {}
        order: list[int] = []
        # A warm-up chunk (-1): the writer starts once the reader is connected and has read it,
        # so connection setup is not counted as latency.
        writer.store.append(writer.address, TENANT, [("", "-1")])
        for message in client.streams.read(run_id, "out", last_event_id="0-0", retry=QUICK):
            if message.data == -1:
                writer.start()
                continue
            received[message.data] = time.time()
            order.append(message.data)
    writer.join()
    latencies = [(received[v] - writer.stamps[v]) * 1000 for v in received]
    span = max(received.values()) - min(received.values())
    return {
        "delivered": len(order),
        "in_order": order == list(range(events)),
        "events_per_s": len(order) / span if span else float("inf"),
        "p50_ms": statistics.median(latencies),
        "p99_ms": pct(latencies, 99),
    }


def mints(stack: DevStack, key: str, chunks: int) -> tuple[int, int, float, float]:
    with Sluice(stack.api_url, key) as client:
        run_id = client.trigger("bench").id
        writer = client.streams.writer(run_id, "cached")
        started = time.perf_counter()
        for i in range(chunks):
            writer.append(i)
        cached_s = time.perf_counter() - started
        cached = client.streams.cache.mints
        uncached_writer = client.streams.writer(run_id, "uncached")
        started = time.perf_counter()
        for i in range(chunks):
            client.streams.reset()  # what every chunk cost before the reference's fix
            uncached_writer.append(i)
        uncached_s = time.perf_counter() - started
        return cached, client.streams.cache.mints - cached, cached_s, uncached_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--chunks", type=int, default=1000)
    args = parser.parse_args()
    with start_devstack() as stack:
        key = stack.create_key(ORG, ENV)
        print(f"devstack: api {stack.api_url}, streamed reader {stack.info['streamUrl']}")
        print(f"\n1 kHz bursty writer, {args.events} events, writer-to-reader latency:")
        print(
            f"  {'transport':10} {'delivered':>9} {'in order':>8} {'events/s':>9} {'p50 ms':>8} {'p99 ms':>8}"
        )
        results = {}
        for transport in ("streamed", "long_poll"):
            r = results[transport] = transport_run(stack, key, transport, args.events, 1000.0)
            print(
                f"  {transport:10} {r['delivered']:>9} {r['in_order']!s:>8} {r['events_per_s']:>9.0f} "
                f"{r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f}"
            )
        ratio = results["long_poll"]["p50_ms"] / max(results["streamed"]["p50_ms"], 1e-9)
        print(f"  long poll p50 / streamed p50: {ratio:.1f}x")
        print(f"\nunpaced writer (bursts of 100), {args.events} events, reader throughput:")
        for transport in ("streamed", "long_poll"):
            r = transport_run(stack, key, transport, args.events, None)
            print(
                f"  {transport:10} {r['events_per_s']:>9.0f} events/s, delivered {r['delivered']}, "
                f"in order {r['in_order']}"
            )
        lost_dollar, lost_sluice = dollar_against_resuming(StreamStore(stack.redis), 2000, 50, TENANT)
        print("\nreaders cut off 50 times under the 1 kHz writer (2000 events):")
        print(f"  re-reads $ on reconnect: {lost_dollar} lost;  Sluice's resuming reader: {lost_sluice} lost")
        cached, uncached, cached_s, uncached_s = mints(stack, key, args.chunks)
        per = 10_000 / args.chunks
        print(f"\nmints for {args.chunks} chunks appended one by one over HTTP:")
        print(f"  with the credential cache: {cached} mint(s), {cached_s:.1f} s (one per slot)")
        print(
            f"  without (a mint per chunk): {uncached} mints, {uncached_s:.1f} s "
            f"({uncached * per:.0f} per 10 000)"
        )
        print(f"  time ratio without / with: {uncached_s / cached_s:.2f}x")


if __name__ == "__main__":
    main()
