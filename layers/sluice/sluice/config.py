"""Typed settings, read once per process from ``SLUICE_*`` environment variables.

Every setting has a default that works on the local stack; template.yaml supplies the deployed
values. The README's settings table documents each one.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

KIB = 1024
MIB = 1024 * KIB

# --- What one DynamoDB item can hold ---------------------------------------------------------------
# DynamoDB's item limit is "400 KB" (names and values, UTF-8); counted as 400 000 bytes rather than
# 400 KiB, so the budgets below keep 9 600 bytes in hand besides their own margin.
DYNAMODB_ITEM_MAX_BYTES = 400_000
# The most one character of a client's string takes in a stored JSON document: a control character
# is written as a 6-byte escape (\u001f).
JSON_CHAR_MAX_BYTES = 6
# Limits in characters that the item budgets count on; the models enforce them.
TAG_MAX_CHARS = 128  # the reference platform's per-tag limit
STREAM_KEY_MAX_CHARS = 256
RUN_ERROR_CODE_MAX_CHARS = 128  # a worker's failure: POST /api/v1/runs/{id}/fail
RUN_ERROR_MESSAGE_MAX_CHARS = 8192
# One tag in the run's JSON (quotes and comma included), and in the session's string set as well.
_TAG_MAX_BYTES = TAG_MAX_CHARS * JSON_CHAR_MAX_BYTES + 3
# The tags again, as the list indexes' ``tags`` list (raw UTF-8: 4 bytes a character, 1 an element).
_LISTED_TAG_MAX_BYTES = TAG_MAX_CHARS * 4 + 1
# A stream key in the run's string set: raw UTF-8, at most 4 bytes a character.
_STREAM_KEY_MAX_BYTES = STREAM_KEY_MAX_CHARS * 4
# A failed attempt's error as the run stores it (JSON, with its two field names).
_RUN_ERROR_MAX_BYTES = (RUN_ERROR_CODE_MAX_CHARS + RUN_ERROR_MESSAGE_MAX_CHARS) * JSON_CHAR_MAX_BYTES + 32
# Everything else a run item holds, each at its limit with every character the costliest: the task
# id (256 characters, in the document and as an attribute), concurrencyKey (1024), queue (256),
# parentRunId (256), ttl (64), ids, timestamps, status, the lease, the list indexes' keys and
# summary (engine.listing), the attribute and field names.
# tests/unit/engine/test_run_item_budget.py builds that run and weighs it: about 12 KiB.
RUN_ITEM_OTHER_BYTES = 16 * KIB
# The same for a session item: externalId (256), type and taskId (128 each), the trigger
# config's concurrencyKey (1024) and queue (256), ids, timestamps and names: about 8 KiB.
SESSION_ITEM_OTHER_BYTES = 16 * KIB


class Settings(BaseModel):
    """Every field is read from ``SLUICE_<FIELD>`` (``from_environment``). A plain pydantic model
    rather than pydantic-settings' BaseSettings: the fields are scalars that pydantic converts
    from strings by itself, and importing pydantic-settings (and python-dotenv with it) cost
    every cold start 65-90 ms of CPU for no other use (``bench/cold_start.py``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    @classmethod
    def from_environment(cls) -> Settings:
        environ = {name.upper(): value for name, value in os.environ.items() if name[:7].upper() == "SLUICE_"}
        return cls.model_validate(
            {
                name: environ[f"SLUICE_{name.upper()}"]
                for name in cls.model_fields
                if f"SLUICE_{name.upper()}" in environ
            }
        )

    # --- Redis -------------------------------------------------------------------------------
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_cluster: bool = False
    # Lambda answers within API Gateway's 30 s, so a Redis call must give up long before that;
    # every Redis use in Sluice has a fail-open or retry path for a timeout.
    redis_socket_timeout_ms: int = Field(default=500, ge=10)
    redis_connect_timeout_ms: int = Field(default=1000, ge=10)
    redis_retries: int = Field(default=2, ge=0)

    # --- AWS resources (template.yaml fills these) --------------------------------------------
    api_keys_table: str = "sluice-api-keys"
    runs_table: str = "sluice-runs"
    idempotency_table: str = "sluice-idempotency"
    run_queue_url: str = ""
    payload_bucket: str = "sluice-payloads"
    # A request that cannot reach AWS must answer 503 well inside API Gateway's 30 s: two
    # attempts (one retry, backing off at most 1 s in botocore's standard mode) of at most 0.5 s
    # to connect and 1 s to read bound a 503 at 3 s, and at 2 s when AWS cannot be reached at all.
    aws_connect_timeout_s: float = Field(default=0.5, gt=0)
    aws_read_timeout_s: float = Field(default=1.0, gt=0)
    aws_max_attempts: int = Field(default=2, ge=1)

    # --- Triggers -----------------------------------------------------------------------------
    # The largest payload a trigger may carry (the reference platform's limit is 3 MiB).
    max_payload_bytes: int = Field(default=3 * MIB, ge=1)
    # Payloads above this go to S3; it stays well under DynamoDB's 400 KB item limit so that the
    # rest of the run record always fits beside an inline payload.
    payload_offload_bytes: int = Field(default=256 * KIB, ge=1)
    # How long an idempotency key holds when the trigger gives no idempotencyKeyTTL (the
    # reference platform's default is 30 days).
    idempotency_default_ttl: str = "30d"
    idempotency_key_max_chars: int = Field(default=2048, ge=1)
    max_tags: int = Field(default=10, ge=0)
    # A run's options.metadata (and a session's metadata), as compact JSON. The reference platform
    # allows 256 KiB, but it keeps metadata apart; here it shares the run's one DynamoDB item
    # (400 KB) with an inline payload of up to SLUICE_PAYLOAD_OFFLOAD_BYTES (256 KiB), an inline
    # output of up to SLUICE_RUN_OUTPUT_OFFLOAD_BYTES (64 KiB), SLUICE_MAX_STREAMS_PER_RUN stream
    # keys (10 x 1 KiB), the tags and idempotency key (20 KiB) and the other fields (16 KiB).
    # 16 KiB of metadata leaves about 9 KiB spare of 400 000 bytes (`_items_fit` checks the sum).
    max_metadata_bytes: int = Field(default=16 * KIB, ge=0)

    # --- Burst smoothing (sluice.mollifier) -------------------------------------------------
    # Off by default, as the reference platform ships it (TRIGGER_MOLLIFIER_ENABLED=0): rollout is
    # per organization through its `mollifierEnabled` flag, and off means no Redis work at all.
    mollifier_enabled: bool = False
    # Evaluate and count for organizations that are not enrolled, never divert (reference default).
    mollifier_shadow_mode: bool = False
    # The reference platform's defaults: more than 100 triggers for one environment in a 200 ms
    # fixed window trips it, and diversion holds for 500 ms after the last over-threshold trigger.
    mollifier_trip_window_ms: int = Field(default=200, ge=1)
    mollifier_trip_threshold: int = Field(default=100, ge=0)
    mollifier_hold_ms: int = Field(default=500, ge=1)
    # Handler executions per entry before it becomes a FAILED run (reference default 3).
    mollifier_max_attempts: int = Field(default=3, ge=1)
    # Hash-tag shards of the buffer: an organization's keys all live in one shard (one cluster
    # slot), so shards are the unit that spreads the buffer over ElastiCache nodes. 8 spreads over
    # the 2-6 node groups a cluster usually has, while keeping the drainer's probe of empty shards
    # short. Change it only while the buffer is empty: an entry stays in the shard it was accepted in.
    mollifier_shards: int = Field(default=8, ge=1, le=1024)
    # The reference keeps an acked entry 30 s so reads resolve while the run store catches up.
    mollifier_ack_grace_s: int = Field(default=30, ge=1)
    # An entry the engine could not record even as a FAILED run stays readable (as FAILED) this
    # long: a week covers a weekend of nobody looking.
    mollifier_failed_ttl_s: int = Field(default=7 * 24 * 3600, ge=1)
    # Payloads over this pass through: an entry has no TTL and lives in ElastiCache memory, and the
    # engine would offload a payload this large to S3 anyway (SLUICE_PAYLOAD_OFFLOAD_BYTES).
    mollifier_max_entry_bytes: int = Field(default=256 * KIB, ge=1)
    # The reference's pre-gate claim: TTL clamped to [5, 30] s, waiters poll every 25 ms for 5 s.
    mollifier_claim_ttl_s: int = Field(default=30, ge=1)
    mollifier_claim_min_ttl_s: int = Field(default=5, ge=1)
    mollifier_claim_wait_ms: int = Field(default=5000, ge=0)
    mollifier_claim_poll_ms: int = Field(default=25, ge=1)
    # SQS DelaySeconds of the signal that replaces a requeued entry's: gives the dependency that
    # just failed a moment before the retry's signal arrives (SQS allows up to 900).
    mollifier_retry_delay_s: int = Field(default=5, ge=0, le=900)
    # The reference's stale threshold (300 s): an entry queued this long may have lost its signal.
    mollifier_stale_after_s: int = Field(default=300, ge=1)
    # An entry DRAINING this long belongs to a drainer invocation that died: the drainer's 30 s
    # timeout (no invocation works an entry longer: it popped it after it started) and a margin.
    # It was 6x the timeout (180 s, DrainQueue's visibility margin, which guards something else):
    # the runs a killed drainer had popped then read as buffered for ~285 s (180 s, then up to a
    # sweep interval, then a drain); now at most 45 s + the sweep interval + a drain.
    mollifier_draining_abandon_s: int = Field(default=45, ge=1)
    # Bounded work per sweep: environments inspected, and signals or reclaims per invocation
    # (the reference sweeps at most 1000 entries per environment per pass).
    mollifier_sweep_max_envs: int = Field(default=1000, ge=1)
    mollifier_sweep_max_repairs: int = Field(default=1000, ge=0)
    drain_queue_url: str = ""

    # --- Streaming batches (sluice.batches) -------------------------------------------------
    batches_table: str = "sluice-batches"
    batch_item_queue_url: str = ""
    staged_ingest_queue_url: str = ""
    staging_bucket: str = "sluice-staging"
    # Items of a request-streamed batch: ten times the reference platform's 1000, because its SDK
    # neither splits a batch nor stages one, and phase 2's memory does not grow with the count
    # (10 000 small items are about 2 MB of NDJSON, well inside one 6 MB request). 3 MiB per line.
    batch_max_items: int = Field(default=10_000, ge=1)
    batch_item_max_bytes: int = Field(default=3 * MIB, ge=1)
    # Items in flight per phase-2 request (reference default 10; 1 = sequential). Peak memory is
    # about this times SLUICE_BATCH_ITEM_MAX_BYTES, so raise the function's memory with it.
    batch_ingest_concurrency: int = Field(default=10, ge=1, le=256)
    # One phase-2 request: at most this many lines (more is a 413 before any is read), and it
    # stops pulling lines after this long (a 413 then, the items before it stay queued), well
    # before the function's 29 s timeout and API Gateway's 30 s: a larger batch is split over
    # requests or staged.
    batch_request_max_lines: int = Field(default=10_000, ge=1)
    batch_request_budget_s: float = Field(default=20.0, gt=0)
    # Staged (S3-uploaded) batches are not bound by Lambda's 6 MB request limit, only by time.
    batch_max_staged_items: int = Field(default=100_000, ge=1)
    # An unsealed batch is aborted after this (the reference's BATCH_SEAL_TIMEOUT_MS, 30 min).
    batch_seal_timeout_s: int = Field(default=1800, ge=1)
    # Per-environment token bucket, one token per run (the reference's BATCH_RATE_LIMIT_* refill),
    # whose bucket holds the largest streamed batch (SLUICE_BATCH_MAX_ITEMS) by default. A batch
    # larger than the bucket costs a full bucket (``ratelimit.consume``), so none waits for ever.
    batch_rate_limit_max: int = Field(default=10_000, ge=1)
    batch_rate_limit_refill: int = Field(default=100, ge=1)
    batch_rate_limit_interval_s: float = Field(default=10.0, gt=0)
    # A presigned staging or payload upload URL stays valid this long.
    batch_upload_url_ttl_s: int = Field(default=3600, ge=60, le=7 * 24 * 3600)
    # Per-index ingest state in Redis outlives the seal timeout and a backlog of processing.
    batch_state_ttl_s: int = Field(default=7 * 24 * 3600, ge=60)
    # A batch record is kept this long after creation (DynamoDB TTL), like a run's retention.
    batch_retention_s: int = Field(default=30 * 24 * 3600, ge=3600)
    # A staged object is read in ranged GETs of this size (S3's guidance: 8-16 MB per range).
    batch_staged_range_bytes: int = Field(default=8 * MIB, ge=64 * KIB)
    # A staged ingest stops pulling items this long before its invocation's deadline, finishes the
    # items in flight and hands the rest of the object to a continuation message.
    batch_staged_reserve_s: float = Field(default=60.0, ge=1)

    # --- Realtime streams (sluice.streams) ---------------------------------------------------
    # The Secrets Manager secret (name or ARN) whose value signs stream write tokens; devstack
    # creates one with a random value.
    stream_token_secret_id: str = "sluice-stream-token-secret"
    # Seconds the secret is cached per process (Powertools parameters): a rotated secret is
    # picked up within this time, and tokens signed with the old one fail from then on.
    stream_token_secret_cache_s: int = Field(default=300, ge=0)
    # A write token's life; the reference platform's S2 access tokens live one day.
    stream_token_ttl_s: int = Field(default=86_400, ge=60)
    # Entries kept per stream (XADD MAXLEN ~); the reference keeps 10 000.
    stream_max_len: int = Field(default=10_000, ge=1)
    # One chunk's limit; larger appends are a 413 (chunk_too_large).
    stream_chunk_max_bytes: int = Field(default=512 * KIB, ge=1)
    # A stream's keys expire this long after the last write (refreshed on every append), like the
    # reference's REDIS_STREAM_TTL_SECONDS, but a day so that a slow run's readers can resume.
    stream_ttl_s: int = Field(default=86_400, ge=60)
    # Where the streaming (Function URL) reader answers; the mint's readUrl points here. Empty:
    # readUrl is the HTTP API's long-poll route.
    stream_read_url: str = ""
    # A streamed SSE connection ends after this (under Lambda's 15 min) with a retry: hint.
    sse_max_connection_s: float = Field(default=600.0, gt=0, le=870)
    # A long poll answers this long after its first event arrived, to gather a burst into one
    # response.
    sse_linger_ms: int = Field(default=100, ge=0)
    # A long poll with no event answers with a keep-alive after this (under API Gateway's 30 s).
    sse_window_s: float = Field(default=20.0, gt=0, le=28)
    # How long one blocking XREAD waits; the reader sends a keep-alive comment when
    # SLUICE_SSE_KEEPALIVE_S passed without data.
    sse_block_ms: int = Field(default=1000, ge=1, le=10_000)
    sse_keepalive_s: float = Field(default=15.0, gt=0)
    # The retry: hint (ms) that ends each response, so that EventSource reconnects at once.
    sse_retry_ms: int = Field(default=1000, ge=0)
    # The long poll's retry: hint. A long poll ends as soon as events arrived, and the next ones
    # wait for the reconnect: a browser honours retry: to the letter (with 1000, Chromium's p50
    # was 460-680 ms against 134 ms for a client that reconnects at once), so it stays short.
    # Not 0: a browser reconnects after a network error at this pace too, with no back-off.
    sse_long_poll_retry_ms: int = Field(default=25, ge=0)

    # --- Auth ---------------------------------------------------------------------------------
    # A resolved API key is cached this long per process, so a warm function does not read
    # DynamoDB on every request; a revoked key stops working within this time.
    auth_cache_ttl_s: float = Field(default=30.0, ge=0)

    # --- Run creation from SQS (drainer, batch_runs) -------------------------------------------
    # Records of one SQS batch handled at once: each is mostly waiting on DynamoDB or Redis, and
    # boto3 and redis-py release the GIL while they wait. 1 handles them one after another.
    sqs_record_concurrency: int = Field(default=10, ge=1, le=100)
    # --- Sessions (sluice.sessions) ------------------------------------------------------------
    sessions_table: str = "sluice-sessions"
    # A conversation snapshot's limit (PUT /api/v1/sessions/{id}/snapshot); larger is a 413.
    session_snapshot_max_bytes: int = Field(default=5 * MIB, ge=1)
    # A session's triggerConfig.basePayload, as compact JSON. It is stored in the session's item
    # beside the metadata and merged under each of its runs' payloads; as large as an inline run
    # payload, so the session item stays far under DynamoDB's 400 KB (318 KB at most).
    session_base_payload_max_bytes: int = Field(default=256 * KIB, ge=0)
    # --- Run lifecycle (sluice.engine.lifecycle) ----------------------------------------------
    # A started attempt is the worker's until this long after its last start or heartbeat; then
    # the run reaper treats it as crashed. Workers heartbeat at a third of it.
    run_lease_s: int = Field(default=60, ge=1, le=12 * 3600)
    # Attempts of a run whose trigger gave no maxAttempts (the reference's default retry config).
    run_default_max_attempts: int = Field(default=3, ge=1, le=100)
    # A failed or lost attempt is retried after min x 2^(attempt-1), up to max, times 1-2 (jitter).
    run_retry_min_delay_ms: int = Field(default=1000, ge=0)
    run_retry_max_delay_ms: int = Field(default=30_000, ge=0)
    # Streams minted on one run: each key is recorded on the run's item (up to 1 KiB each), so their
    # number is bounded like the item's other fields (see SLUICE_MAX_METADATA_BYTES).
    max_streams_per_run: int = Field(default=10, ge=1)
    # The largest output a completing worker may report (the payload limit's 3 MiB).
    run_max_output_bytes: int = Field(default=3 * MIB, ge=1)
    # Outputs over this go to the payload bucket. Lower than SLUICE_PAYLOAD_OFFLOAD_BYTES: the run
    # item already holds up to that much payload and must stay under DynamoDB's 400 KB.
    run_output_offload_bytes: int = Field(default=64 * KIB, ge=1)
    # Lapsed leases the reaper handles per invocation; the next sweep takes the rest.
    run_reaper_max_runs: int = Field(default=1000, ge=1)

    @model_validator(mode="after")
    def _items_fit(self) -> Self:
        """Refuse settings under which a run or a session that passed every limit could still be
        too large for its DynamoDB item: the write would fail for every such request (a 500)."""
        budgets = {"run": self.run_item_max_bytes(), "session": self.session_item_max_bytes()}
        for item, size in budgets.items():
            if size > DYNAMODB_ITEM_MAX_BYTES:
                raise ValueError(
                    f"a {item} item could grow to {size} bytes, over DynamoDB's {DYNAMODB_ITEM_MAX_BYTES}:"
                    " lower SLUICE_MAX_METADATA_BYTES or the limits beside it"
                )
        return self

    def run_item_max_bytes(self) -> int:
        """The largest run item these settings allow: the inline payload, the inline output or a
        failed attempt's error (a run holds one of them: a completion removes the error),
        metadata, stream keys, tags, idempotency key and the rest."""
        return (
            self.payload_offload_bytes
            + max(self.run_output_offload_bytes, _RUN_ERROR_MAX_BYTES)
            + self.max_metadata_bytes
            + self.max_streams_per_run * _STREAM_KEY_MAX_BYTES
            + self.max_tags * (_TAG_MAX_BYTES + _LISTED_TAG_MAX_BYTES)
            + self.idempotency_key_max_chars * JSON_CHAR_MAX_BYTES
            + RUN_ITEM_OTHER_BYTES
        )

    def session_item_max_bytes(self) -> int:
        """The largest session item: base payload, metadata, its tags twice (the document and the
        string set) and the trigger config's tags, and the rest."""
        return (
            self.session_base_payload_max_bytes
            + self.max_metadata_bytes
            + 3 * self.max_tags * _TAG_MAX_BYTES
            + SESSION_ITEM_OTHER_BYTES
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings.from_environment()


def reload_settings() -> Settings:
    """Drop the cached settings (tests and devstack change the environment between uses)."""
    get_settings.cache_clear()
    return get_settings()
