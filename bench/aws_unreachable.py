"""How long a request takes to give up on AWS: the time one boto3 call from ``sluice.aws`` spends
before it raises (the handler turns that into a 503 with Retry-After), against an endpoint that
refuses connections, one that accepts and closes them, and one that accepts and never answers.

    .venv/bin/python -m bench.aws_unreachable

Side by side: the client bounds before issue #10 (2 s connect, 5 s read, botocore
``max_attempts=4``, which is 5 attempts) and today's defaults. Prints figures and ratios only.
"""

from __future__ import annotations

import os
import socket
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

sys.path[:0] = [
    str(Path(__file__).resolve().parent.parent),
    str(Path(__file__).resolve().parent.parent / "layers/sluice"),
]

from botocore.exceptions import BotoCoreError, ClientError  # noqa: E402

from sluice import aws as sluice_aws  # noqa: E402
from sluice.config import reload_settings  # noqa: E402

# The bounds before: botocore read max_attempts=4 as four retries, so five attempts in all.
BEFORE = {
    "SLUICE_AWS_CONNECT_TIMEOUT_S": "2",
    "SLUICE_AWS_READ_TIMEOUT_S": "5",
    "SLUICE_AWS_MAX_ATTEMPTS": "5",
}
NOW: dict[str, str] = {}


@dataclass
class DeadEndpoint:
    url: str
    connections: int = 0  # connections accepted (none when it refuses them)


@contextmanager
def dead_endpoint(kind: str) -> Iterator[DeadEndpoint]:
    """A local endpoint that ``refuses`` connections, accepts and ``closes`` them, or accepts
    them and ``hangs`` (never answers)."""
    if kind == "refuses":
        with socket.create_server(("127.0.0.1", 0)) as probe:
            port = probe.getsockname()[1]
        yield DeadEndpoint(f"http://127.0.0.1:{port}")  # closed again: connections are refused
        return
    server = socket.create_server(("127.0.0.1", 0), backlog=64)
    server.settimeout(0.05)
    endpoint = DeadEndpoint(f"http://127.0.0.1:{server.getsockname()[1]}")
    stop, held = threading.Event(), []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            endpoint.connections += 1
            if kind == "closes":
                conn.close()
            else:
                held.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield endpoint
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


def give_up_times(url: str, settings: dict[str, str], samples: int) -> list[float]:
    for name in ("SLUICE_AWS_CONNECT_TIMEOUT_S", "SLUICE_AWS_READ_TIMEOUT_S", "SLUICE_AWS_MAX_ATTEMPTS"):
        os.environ.pop(name, None)
    os.environ.update(settings)
    os.environ["AWS_ENDPOINT_URL"] = url
    reload_settings()
    sluice_aws.reset_clients()
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        with suppress(BotoCoreError, ClientError):
            sluice_aws.dynamodb().get_item(TableName="t", Key={"pk": {"S": "x"}})
        times.append(time.perf_counter() - start)
    return times


def summary(times: list[float]) -> str:
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    median = statistics.median(ordered)
    return f"p50 {median:6.2f} s  p99 {p99:6.2f} s  max {ordered[-1]:6.2f} s  (n={len(ordered)})"


def main() -> None:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    # (endpoint, samples before, samples now): a hung endpoint costs the old bounds ~30 s a call.
    plan = [("refuses", 10, 40), ("closes", 10, 40), ("hangs", 2, 10)]
    for kind, before_n, now_n in plan:
        with dead_endpoint(kind) as endpoint:
            before = give_up_times(endpoint.url, BEFORE, before_n)
            now = give_up_times(endpoint.url, NOW, now_n)
        ratio = statistics.median(before) / max(statistics.median(now), 1e-9)
        print(f"{kind:8} before: {summary(before)}")
        print(f"{kind:8} now:    {summary(now)}   median before/now {ratio:.1f}x")


if __name__ == "__main__":
    main()
