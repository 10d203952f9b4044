"""Streaming batches: phase 1 create, NDJSON phase 2 with bounded concurrency, runs, sealing.

- ``create_batch`` / ``get_status`` / ``payload_uploads``: phase 1, the status page, presigned
  payload uploads (``service``).
- ``ingest_items``: phase 2 over a parsed NDJSON body (``ingest``, ``items``, ``ndjson``, ``http``).
- ``process_message``: batch_runs, one queued item to its run, completing the batch once (``runs``).
- ``reap``: the seal-timeout reaper (``reaper``); ``staged``: phase 2 from an S3 upload.

Where state lives: the batch record in DynamoDB (``store``), per-item progress in Redis
(``state``), every key name in ``keys``.
"""

from sluice.batches import staged
from sluice.batches.errors import BatchNotFound, BatchNotPending, BatchRateLimited, InvalidItem, InvalidNdjson
from sluice.batches.http import answer_out_of_time, parse_body, require_ndjson
from sluice.batches.ingest import ingest_items
from sluice.batches.models import Batch, BatchStatus, CreateBatchRequest, IngestResult, parse_create_request
from sluice.batches.reaper import reap
from sluice.batches.runs import process_message
from sluice.batches.service import CreateResult, create_batch, get_status, payload_uploads

__all__ = [
    "Batch",
    "BatchNotFound",
    "BatchNotPending",
    "BatchRateLimited",
    "BatchStatus",
    "CreateBatchRequest",
    "CreateResult",
    "IngestResult",
    "InvalidItem",
    "InvalidNdjson",
    "answer_out_of_time",
    "create_batch",
    "get_status",
    "ingest_items",
    "parse_body",
    "parse_create_request",
    "payload_uploads",
    "process_message",
    "reap",
    "require_ndjson",
    "staged",
]
