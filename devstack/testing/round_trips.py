"""Redis round trips counted on a real client, for tests and benchmarks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis


@contextmanager
def round_trips(client: Any) -> Iterator[list[int]]:
    """Round trips to a single-node Redis while the block runs (``[count]``): every command or
    pipeline takes one connection from the real client's pool."""
    assert isinstance(client, redis.Redis), "a cluster client keeps a pool per node"
    pool = client.connection_pool
    real = pool.get_connection
    count = [0]

    def counted(*args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        return real(*args, **kwargs)

    pool.get_connection = counted  # type: ignore[method-assign]
    try:
        yield count
    finally:
        pool.get_connection = real  # type: ignore[method-assign]
