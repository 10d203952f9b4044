"""Make moto's DynamoDB as atomic as DynamoDB (one table write at a time), and its transactions
as cheap as their own writes.

moto checks a write's condition and then applies it without a lock, and its
``transact_write_items`` deep-copies the whole table while other threads may be writing to it.
Under concurrent requests (devstack's threaded server, tests that trigger from many threads) that
lets two conditional puts on one key both succeed, or fails a transaction with "dictionary changed
size during iteration". DynamoDB serialises writes to an item and runs transactions atomically,
so serialising moto's writes (and the scans that iterate a table) is the faithful emulation.

That deep copy (the rollback state of a transaction) also copies every record of the table's
stream, and moto never trims a stream: a transaction cost ~42 us per record the table ever
streamed, so a stack (or a test session) that had streamed a few thousand records spent a
hundred ms and more of CPU on each trigger. The rollback state now shares the records, which
nothing changes once written, and copies only their list.

``python -m devstack.moto_atomic`` runs moto's HTTP server with both in place.
"""

from __future__ import annotations

import copy
import functools
import threading
from typing import Any

from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import StreamShard

_LOCK = threading.RLock()
_SERIALISED = ("put_item", "update_item", "delete_item", "transact_write_items", "scan", "query")


def patch_dynamodb() -> None:
    """Idempotent: serialised writes and light transaction rollback state."""
    serialise_dynamodb()
    StreamShard.__deepcopy__ = _shard_rollback_copy  # type: ignore[attr-defined]


def serialise_dynamodb() -> None:
    """Idempotent: wraps each method once."""
    for name in _SERIALISED:
        method = getattr(DynamoDBBackend, name)
        if getattr(method, "_devstack_serialised", False):
            continue

        def locked(*args: Any, _method: Any = method, **kwargs: Any) -> Any:
            with _LOCK:
                return _method(*args, **kwargs)

        functools.update_wrapper(locked, method)
        locked._devstack_serialised = True  # type: ignore[attr-defined]
        setattr(DynamoDBBackend, name, locked)


def _shard_rollback_copy(shard: StreamShard, memo: dict[int, Any]) -> StreamShard:
    # Called while the shard's table is deep-copied: memo already maps the table to its copy.
    clone = copy.copy(shard)
    memo[id(shard)] = clone
    clone.table = copy.deepcopy(shard.table, memo)
    clone.items = list(shard.items)
    return clone


if __name__ == "__main__":
    from moto.server import main

    patch_dynamodb()
    main()
