"""Make moto's DynamoDB as atomic as DynamoDB: one table write at a time.

moto checks a write's condition and then applies it without a lock, and its
``transact_write_items`` deep-copies the whole table while other threads may be writing to it.
Under concurrent requests (devstack's threaded server, tests that trigger from many threads) that
lets two conditional puts on one key both succeed, or fails a transaction with "dictionary changed
size during iteration". DynamoDB serialises writes to an item and runs transactions atomically,
so serialising moto's writes (and the scans that iterate a table) is the faithful emulation.

devstack's moto server (``devstack.moto_server``) and the tests' in-process moto both take it.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

from moto.dynamodb.models import DynamoDBBackend

_LOCK = threading.RLock()
_SERIALISED = ("put_item", "update_item", "delete_item", "transact_write_items", "scan", "query")


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
