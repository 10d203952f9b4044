"""A copy of the API keys table beside stack.json, put back when moto restarts.

moto keeps everything in memory: a moto that died and was restarted has empty tables, and would
refuse the key in ``stack.json`` and every key ``keys create`` printed. So each time devstack
writes keys (the dev key at start, ``keys create``), it copies the whole API keys table to
``STATE_DIR/api-keys.json`` (0600; the table holds key hashes and organization flags, never a
key), and after a restart it puts those items back as they were.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from devstack import stack_file


@contextmanager
def _exclusive(state_dir: Path) -> Iterator[None]:
    # Two `keys create` at once: without the lock the one whose scan came first could write
    # last, and the backup would miss the other's key.
    fd = os.open(state_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def save(state_dir: Path, dynamodb: Any, table: str) -> int:
    """Copy every item of the keys table to the state dir; returns how many."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive(state_dir):
        pages = dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True)
        items = [item for page in pages for item in page.get("Items", [])]
        stack_file.write_atomic(state_dir / stack_file.KEYS_BACKUP_FILE, json.dumps(items) + "\n")
    return len(items)


def restore(state_dir: Path, dynamodb: Any, table: str) -> int:
    """Put the saved items back into the keys table; returns how many."""
    path = state_dir / stack_file.KEYS_BACKUP_FILE
    try:
        items: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:  # removed by hand: the stack still comes back, without keys
        return 0
    for item in items:
        dynamodb.put_item(TableName=table, Item=item)
    return len(items)
