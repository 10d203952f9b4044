"""Every key the batch package uses, in Redis, DynamoDB and S3, built here and nowhere else.

Redis (per batch ``B``, all in one cluster slot through the hash tag ``{B}``):

- ``sluice:batch:{B}:enqueued`` SET of item indexes durably on BatchItemQueue (phase 2).
- ``sluice:batch:{B}:processed`` SET of item indexes whose run exists (batch_runs).
- ``sluice:batch:{B}:failed`` SET of processed indexes whose run is FAILED (pre-failed or rejected).

and per environment ``E``: ``sluice:ratelimit:batch:{E}`` HASH, the token bucket.

Batch ids are minted here (``batch_`` + 25 base-36 characters) and a path segment that does not
have that shape is refused before it reaches any key, so a customer string never shapes a key or
moves one to another slot.

DynamoDB (BatchesTable, partition key ``pk``): the batch record under its id, and an idempotency
binding under ``IDEM#<sha256(env, key)>``.

S3: staged bodies under ``staging/<env>/<batch>.ndjson`` in the staging bucket; offloaded item
payloads where the engine keeps a run's payload (``payloads/<env>/<run>.json``), so a run created
from the item points at the object phase 2 wrote and a retry overwrites the same object.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets

from sluice.engine import derived_run_id
from sluice.engine.payloads import payload_key

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
BATCH_ID = re.compile(r"^batch_[0-9a-z]{25}$")
STAGING_PREFIX = "staging/"
_STAGING_KEY = re.compile(r"^staging/([A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+)/(batch_[0-9a-z]{25})\.ndjson$")


def new_batch_id() -> str:
    return "batch_" + "".join(secrets.choice(_ALPHABET) for _ in range(25))


def is_batch_id(value: str) -> bool:
    return bool(BATCH_ID.match(value))


def _tag(batch_id: str) -> str:
    return "sluice:batch:{" + batch_id + "}"


def enqueued(batch_id: str) -> str:
    return _tag(batch_id) + ":enqueued"


def processed(batch_id: str) -> str:
    return _tag(batch_id) + ":processed"


def failed(batch_id: str) -> str:
    return _tag(batch_id) + ":failed"


def rate_limit(tenant: str) -> str:
    return "sluice:ratelimit:batch:{" + tenant + "}"


def idempotency_pk(tenant: str, key: str) -> str:
    return "IDEM#" + hashlib.sha256(json.dumps([tenant, key]).encode("utf-8")).hexdigest()


def run_id(batch_id: str, index: int) -> str:
    """The run an item becomes: a function of (batch, index), so no redelivery makes a second."""
    return derived_run_id(batch_id, str(index))


def item_payload(tenant: str, batch_id: str, index: int) -> str:
    return payload_key(tenant, run_id(batch_id, index))


def staging(tenant: str, batch_id: str) -> str:
    return f"{STAGING_PREFIX}{tenant}/{batch_id}.ndjson"


def parse_staging(key: str) -> tuple[str, str] | None:
    """(tenant, batch) of a staging object key, or None for any other key."""
    match = _STAGING_KEY.match(key)
    return (match.group(1), match.group(2)) if match else None
