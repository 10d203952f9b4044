"""Every error code the API answers, with its status and when: the one source for the OpenAPI
document's error responses and the README's error table (a test checks both, and that every code
the code raises is listed here)."""

from __future__ import annotations

ERROR_CODES: dict[str, tuple[int, str]] = {
    "invalid_json": (
        400,
        "the body is empty, not UTF-8, not JSON, or holds NaN, Infinity or an out-of-range number",
    ),
    "invalid_encoding": (400, "a base64-encoded body that does not decode"),
    "empty_body": (400, "a phase-2 request or a stream append without a body"),
    "invalid_ndjson": (
        400,
        "a phase-2 line that is not UTF-8 or not JSON, or a stream append line that is not"
        ' `{"data", "partId"?}` (`issues` names the line; nothing is appended)',
    ),
    "idempotency_key_too_long": (400, "`idempotencyKey` over `SLUICE_IDEMPOTENCY_KEY_MAX_CHARS` characters"),
    "invalid_run_count": (400, "`runCount` is not a positive integer"),
    "batch_too_large": (400, "`runCount` over the batch limit (`staged: true` takes more)"),
    "invalid_indices": (
        400,
        'a `/payloads` body that is not `{"indices": [...]}` of 1-100 indexes of the batch',
    ),
    "invalid_runs_offset": (400, "`runsOffset` that is not a non-negative integer"),
    "invalid_stream_key": (
        400,
        "a stream key that is empty, over 256 characters, or holds a space or a control character",
    ),
    "invalid_part_id": (
        400,
        "an `X-Part-Id` (or the trigger.dev SDK writer's `X-Client-Id`) that is empty or over 256 characters",
    ),
    "invalid_resume_chunk": (400, "an `X-Resume-From-Chunk` that is not a non-negative integer"),
    "invalid_last_event_id": (
        400,
        "a `Last-Event-ID` (or `?lastEventId=`, `?after=`) that is not a stream entry id such as"
        " `1700000000000-0` (each part at most 19 digits, so Redis can hold it) nor, on a read, a"
        " count of chunks to skip (at most 15 digits)",
    ),
    "invalid_limit": (
        400,
        "a sessions list `limit` or a runs list `page[size]` that is not a whole number from 1 to 100",
    ),
    "invalid_status": (
        400,
        "a sessions list `status` other than `ACTIVE` or `CLOSED`, or a runs list `filter[status]`"
        " naming no run status",
    ),
    "invalid_filter": (
        400,
        "a runs list `filter[createdAt][from]` or `[to]` that is not an ISO-8601 time, or a"
        " `[period]` that is not a duration",
    ),
    "invalid_cursor": (
        400,
        "a sessions list `cursor` or a runs list `page[after]`/`page[before]` this list did not return"
        " (of another environment or filter), or both of the latter",
    ),
    "bad_request": (400, "any other malformed request"),
    "unauthorized": (401, "no `Bearer` key, or an unknown key"),
    "invalid_stream_token": (
        401,
        "a stream token that is malformed, forged, or made for another stream, channel or tenant",
    ),
    "stream_token_expired": (401, "a stream token past its expiry: mint a new one"),
    "secret_key_required": (
        403,
        "minting a session's `out` channel with a key that is not a secret (`sk_`) key",
    ),
    "forbidden": (403, "any other request the key may not make"),
    "not_found": (404, "no such run in this tenant (organization and environment)"),
    "batch_not_found": (404, "no such batch in this tenant"),
    "session_not_found": (404, "no such session (by id or `externalId`) in this tenant"),
    "channel_not_found": (404, "a session channel other than `in` and `out`"),
    "snapshot_not_found": (404, "a session that has no snapshot yet"),
    "route_not_found": (404, "no such route"),
    "batch_not_pending": (
        409,
        "items or uploads for a batch that takes no more (`ABORTED`): create a new batch",
    ),
    "batch_unexpected_state": (409, "a seal that found the batch in a state no retry resolves"),
    "run_already_started": (409, "a start while another worker's attempt executes the run"),
    "run_not_due": (409, "a start before the run's `delayUntil` (`Retry-After` says when)"),
    "run_not_startable": (409, "a start of a run in a status that no start leaves"),
    "stale_lease": (
        409,
        "a heartbeat, complete or fail whose lease token is no longer the run's current attempt;"
        " nothing changed (also a stream mint with such an `X-Lease-Token`, and an append with a"
        " token minted for an attempt that was retried or followed by another)",
    ),
    "run_canceled": (
        409,
        "a heartbeat, complete or fail of an attempt whose run was canceled: stop the attempt",
    ),
    "concurrency_limited": (
        409,
        "a start of a run whose queue (or `concurrencyKey`) has `concurrencyLimit` runs executing;"
        " the run stays queued (`Retry-After` says when to try again)",
    ),
    "run_expired": (409, "a start of a run whose `ttl` passed before it started (it is now `EXPIRED`)"),
    "run_finished": (
        409,
        "a start, heartbeat, complete or fail of a run that is already `COMPLETED` or `FAILED`, a"
        " start of a `CANCELED` run, or a cancel of a `COMPLETED` or `FAILED` run (a stream mint"
        " for a finished run answers this code with 400)",
    ),
    "too_many_streams": (
        409,
        "a stream mint of a new key on a run that has `SLUICE_MAX_STREAMS_PER_RUN` streams already",
    ),
    "stream_closed": (409, "an append to a closed stream"),
    "session_closed": (409, "minting or appending on a closed session"),
    "conflict": (409, "any other conflict"),
    "payload_too_large": (413, "the payload is over `SLUICE_MAX_PAYLOAD_BYTES`"),
    "too_many_lines": (
        413,
        "a batch-items request over `SLUICE_BATCH_REQUEST_MAX_LINES` lines (nothing of it is read)",
    ),
    "time_budget_exceeded": (
        413,
        "a batch-items request still reading lines after `SLUICE_BATCH_REQUEST_BUDGET_S` (the items"
        " before are queued; send the rest again; the trigger.dev SDK is answered `200` with"
        " `sealed: false` instead, on which it streams again)",
    ),
    "batch_item_too_large": (
        413,
        "an NDJSON line over the item limit whose first 512 bytes do not name its index",
    ),
    "chunk_too_large": (
        413,
        "a stream chunk over `SLUICE_STREAM_CHUNK_MAX_BYTES` (nothing of the request is appended)",
    ),
    "snapshot_too_large": (413, "a session snapshot over `SLUICE_SESSION_SNAPSHOT_MAX_BYTES`"),
    "output_too_large": (413, "a complete whose `output` is over `SLUICE_RUN_MAX_OUTPUT_BYTES`"),
    "metadata_too_large": (
        413,
        "a trigger's `options.metadata` or a session's `metadata` over `SLUICE_MAX_METADATA_BYTES` as"
        " compact JSON (a batch item's: `invalid_batch_item` with this code in `issues`)",
    ),
    "base_payload_too_large": (
        413,
        "a session's `triggerConfig.basePayload` over `SLUICE_SESSION_BASE_PAYLOAD_MAX_BYTES` as compact"
        " JSON",
    ),
    "unsupported_media_type": (
        415,
        "batch items that are not `application/x-ndjson` (or `application/octet-stream`); a JSON body"
        " whose `Content-Type` is not `application/json` (or `+json`)",
    ),
    "invalid_request": (422, "valid JSON with invalid fields (`issues` names each)"),
    "invalid_body": (422, "a body that is JSON but not an object"),
    "invalid_task_id": (
        422,
        "a task id (percent-decoded once from the path) that is empty, over 256 characters or holds"
        " control characters",
    ),
    "invalid_delay": (422, "a `delay` that is neither a duration nor an ISO-8601 time"),
    "invalid_payload": (
        422,
        "a payload that is not what its `options.payloadType` says (JSON text, a superjson"
        " `{json, meta}`, the path of an uploaded packet)",
    ),
    "invalid_packet_path": (422, "a packet path that is empty, over 512 characters, absolute or has `..`"),
    "invalid_idempotency_ttl": (422, "an `idempotencyKeyTTL` that is not a duration"),
    "payload_too_deep": (
        422,
        "a payload, `metadata` or stream chunk nested over 128 levels (`strict_json.MAX_DEPTH`: what a"
        " stored run can be read back with)",
    ),
    "invalid_batch_item": (
        422,
        "a batch item that is invalid, out of range, or whose uploaded payload is missing or not JSON"
        " (names the index)",
    ),
    "invalid_session": (422, "a session create body with invalid fields (`issues` says where)"),
    "invalid_snapshot": (422, "a snapshot that is not a version 1 snapshot (`issues` says where)"),
    "rate_limited": (429, "too many requests"),
    "batch_rate_limited": (
        429,
        "the environment's batch token bucket is short of `runCount` (`Retry-After`, `X-RateLimit-*`)",
    ),
    "internal_error": (
        500,
        "a failure on Sluice's side, not the request's (AWS refused access, a misconfiguration): logged"
        " with its cause and AWS error code; the body never carries a stack trace",
    ),
    "service_unavailable": (
        503,
        "DynamoDB, S3, SQS, Secrets Manager or (for batches and streams) Redis could not be reached;"
        " retry after `Retry-After`",
    ),
    "idempotency_claim_timeout": (
        503,
        "another trigger with the same idempotency key held its claim too long; retry",
    ),
    "idempotency_contention": (503, "concurrent triggers kept changing an idempotency binding; retry"),
}


def codes_for(status: int) -> list[str]:
    return [code for code, (code_status, _) in ERROR_CODES.items() if code_status == status]


def readme_table() -> str:
    """The README's error table, one row per status."""
    rows = ["| status | code | when |", "| --- | --- | --- |"]
    for status in sorted({status for status, _ in ERROR_CODES.values()}):
        for code in codes_for(status):
            when = ERROR_CODES[code][1]
            rows.append(f"| {status} | `{code}` | {when} |")
    return "\n".join(rows)
