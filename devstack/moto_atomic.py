"""moto as devstack and the tests run it: DynamoDB as atomic as DynamoDB (one table write at a
time), and transactions and SQS calls that cost the same however much the stack has stored.

moto checks a write's condition and then applies it without a lock, and its
``transact_write_items`` deep-copies the whole table while other threads may be writing to it.
Under concurrent requests (devstack's threaded server, tests that trigger from many threads) that
lets two conditional puts on one key both succeed, or fails a transaction with "dictionary changed
size during iteration". DynamoDB serialises writes to an item and runs transactions atomically,
so serialising moto's DynamoDB calls (one at a time, each whole) is the faithful emulation.

That deep copy (the rollback state of a transaction) also copies every record of the table's
stream, and moto never trims a stream: a transaction cost ~42 us per record the table ever
streamed, so a stack (or a test session) that had streamed a few thousand records spent a
hundred ms and more of CPU on each trigger. The rollback state now shares the records, which
nothing changes once written, and copies only their list.

moto's SQS checks each message it hands out against the queue's retention period by computing
every attribute of the queue, message counts included, which visits every message: receiving
from a queue nobody drains (RunQueue on a test stack) cost O(depth) per message, and each
visit read the clock through two datetime conversions. The check now reads the one attribute,
and SQS reads the clock with time.time().

``patch_moto`` applies all of it: devstack's moto server (``devstack.moto_server``) and the
tests' in-process moto both take it.
"""

from __future__ import annotations

import copy
import functools
import threading
import time
from datetime import datetime
from typing import Any

import moto.sqs.models
from moto.core import utils as moto_utils
from moto.dynamodb.models.table import StreamShard
from moto.dynamodb.responses import DynamoHandler
from moto.sqs.models import Message, SQSBackend

_LOCK = threading.RLock()


def patch_moto() -> None:
    """Idempotent: serialised DynamoDB calls, light transaction rollback state, and SQS reads
    that do not visit the whole queue."""
    serialise_dynamodb()
    StreamShard.__deepcopy__ = _shard_rollback_copy  # type: ignore[attr-defined]
    SQSBackend.is_message_valid_based_on_retention_period = _within_retention  # type: ignore[method-assign]
    # moto.sqs.models imports these from moto.core.utils; they are replaced where SQS reads them.
    moto.sqs.models.unix_time = _unix_time  # type: ignore[attr-defined]
    moto.sqs.models.unix_time_millis = _unix_time_millis  # type: ignore[attr-defined]


def serialise_dynamodb() -> None:
    """Idempotent: one DynamoDB call at a time, the whole call. Locking the backend's writes was
    not enough: UpdateItem deep-copies the item it read before it writes, and a concurrent write
    adding an attribute to that item failed the copy."""
    if getattr(DynamoHandler.call_action, "_devstack_serialised", False):
        return
    call_action = DynamoHandler.call_action

    def locked(handler: DynamoHandler) -> Any:
        with _LOCK:
            return call_action(handler)

    functools.update_wrapper(locked, call_action)
    locked._devstack_serialised = True  # type: ignore[attr-defined]
    DynamoHandler.call_action = locked  # type: ignore[method-assign]


def _within_retention(self: SQSBackend, queue_name: str, message: Message) -> bool:
    # Queue sets its attributes from a dict in __init__, so moto's types do not know them.
    retention_s = int(self.get_queue(queue_name).message_retention_period)  # type: ignore[attr-defined]
    assert message.sent_timestamp is not None  # set when the message was sent, before it is read
    return retention_s + message.sent_timestamp / 1000 > _unix_time()


def _unix_time(dt: datetime | None = None) -> float:
    return time.time() if dt is None else moto_utils.unix_time(dt)


def _unix_time_millis(dt: datetime | None = None) -> float:
    return _unix_time(dt) * 1000.0


def _shard_rollback_copy(shard: StreamShard, memo: dict[int, Any]) -> StreamShard:
    # Called while the shard's table is deep-copied: memo already maps the table to its copy.
    clone = copy.copy(shard)
    memo[id(shard)] = clone
    clone.table = copy.deepcopy(shard.table, memo)
    clone.items = list(shard.items)
    return clone
