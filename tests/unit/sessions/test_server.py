"""The sessions server: create / get / list / close, the snapshot, and the channels in and out."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx
import pytest

from sluice.engine import store as run_store
from sluice.errors import ServiceUnavailable
from sluice.sessions import runs, table
from tests.conftest import HttpResult, make_tenant
from tests.unit.sessions.server import SessionsApi, parse_sse

SNAPSHOT = {
    "version": 1,
    "savedAt": "2026-11-23T10:00:00Z",
    "messages": [{"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}],
    "lastOutEventId": "1-0",
    "lastInEventId": None,
}


def run_payload(run_id: str) -> Any:
    run = run_store.get_run_item(run_id)
    assert run is not None
    return run.payload


def test_create_starts_the_first_run_through_the_engine(sessions_api: SessionsApi) -> None:
    res = sessions_api.create(
        externalId="chat-1",
        tags=["support"],
        metadata={"user": "u1"},
        triggerConfig={"basePayload": {"model": "m"}, "queue": "chats"},
    )
    assert res.status == 200, res.body
    body = res.json()
    assert body["id"].startswith("session_") and body["externalId"] == "chat-1"
    assert body["status"] == "ACTIVE" and body["isCached"] is False and body["type"] == "chat"
    assert [m["runId"] for m in sessions_api.run_messages()] == [body["currentRunId"]]
    assert run_payload(body["currentRunId"]) == {"model": "m", "sessionId": body["id"]}
    assert run_store.get_run_item(body["currentRunId"]).queue == "chats"  # type: ignore[union-attr]


def test_create_is_idempotent_on_environment_and_external_id(sessions_api: SessionsApi) -> None:
    first = sessions_api.new(externalId="chat-1")
    again = sessions_api.create(externalId="chat-1")
    assert again.json()["id"] == first["id"] and again.json()["isCached"] is True
    elsewhere = sessions_api.create(tenant=make_tenant("org_b", "env_b"), externalId="chat-1").json()
    assert elsewhere["id"] != first["id"]
    assert len(sessions_api.run_messages()) == 2, "one first run per session, none for the repeat"


def test_concurrent_creates_with_one_external_id_make_one_session_and_one_run(
    sessions_api: SessionsApi,
) -> None:
    ids: list[str] = []
    threads = [
        threading.Thread(target=lambda: ids.append(sessions_api.new(externalId="tab")["id"]))
        for _ in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 1 and len(ids) == 6
    assert len(sessions_api.run_messages()) == 1


@pytest.mark.parametrize(
    "body, code",
    [
        ({"type": "chat"}, "invalid_session"),
        ({"type": "chat", "taskId": "t", "externalId": "session_abc"}, "invalid_session"),
        ({"type": "chat", "taskId": "t", "bogus": 1}, "invalid_session"),
        ({"type": "chat", "taskId": "t", "triggerConfig": {"machine": "large"}}, "invalid_session"),
    ],
)
def test_an_invalid_create_is_422_and_creates_nothing(
    sessions_api: SessionsApi, body: dict[str, Any], code: str
) -> None:
    res = sessions_api.call("POST", "/api/v1/sessions", json_body=body, headers=sessions_api.tenant.headers)
    assert res.status == 422 and res.json()["code"] == code and res.json()["issues"]
    assert sessions_api.run_messages() == []


def test_get_by_id_or_external_id(sessions_api: SessionsApi) -> None:
    created = sessions_api.new(externalId="chat-1")
    by_id, by_external = sessions_api.get(created["id"]).json(), sessions_api.get("chat-1").json()
    assert by_id == by_external and by_id["id"] == created["id"]
    missing = sessions_api.get("nope")
    assert missing.status == 404 and missing.json()["code"] == "session_not_found"


def test_list_is_newest_first_with_cursor_pagination_and_filters(sessions_api: SessionsApi) -> None:
    made = [
        sessions_api.new(type="chat" if i % 2 else "support", tags=["vip"] if i % 3 == 0 else [])["id"]
        for i in range(7)
    ]
    sessions_api.close(made[3])
    newest_first = list(reversed(made))

    seen: list[str] = []
    cursor = ""
    while True:
        page = sessions_api.list(f"limit=2&cursor={cursor}").json()
        assert len(page["data"]) <= 2
        seen += [s["id"] for s in page["data"]]
        if not (cursor := page["nextCursor"]):
            break
    assert seen == newest_first

    def ids(query: str) -> list[str]:
        result, cursor, out = None, "", []
        while result is None or cursor:
            result = sessions_api.list(f"{query}&limit=1&cursor={cursor}").json()
            out += [s["id"] for s in result["data"]]
            cursor = result["nextCursor"] or ""
        return out

    assert ids("type=chat") == [i for n, i in reversed(list(enumerate(made))) if n % 2]
    assert ids("tag=vip") == [made[6], made[3], made[0]]
    assert ids("status=CLOSED") == [made[3]]
    assert ids("type=chat&tag=vip&status=CLOSED") == [made[3]]
    assert made[3] not in ids("status=ACTIVE")


@pytest.mark.parametrize(
    "query, code",
    [
        ("limit=0", "invalid_limit"),
        ("limit=abc", "invalid_limit"),
        ("status=OPEN", "invalid_status"),
        ("cursor=garbage!", "invalid_cursor"),
    ],
)
def test_bad_list_parameters_are_400(sessions_api: SessionsApi, query: str, code: str) -> None:
    res = sessions_api.list(query)
    assert res.status == 400 and res.json()["code"] == code


def test_a_cursor_from_another_environment_is_400(sessions_api: SessionsApi) -> None:
    for _ in range(2):
        sessions_api.new()
    cursor = sessions_api.list("limit=1").json()["nextCursor"]
    res = sessions_api.list(f"cursor={cursor}", tenant=make_tenant("org_b", "env_b"))
    assert res.status == 400 and res.json()["code"] == "invalid_cursor"


def test_a_closed_session_refuses_mints_and_appends_with_409(sessions_api: SessionsApi) -> None:
    session = sessions_api.new()
    token_in, token_out = sessions_api.token(session["id"], "in"), sessions_api.token(session["id"], "out")
    closed = sessions_api.close(session["id"])
    assert closed.status == 200 and closed.json()["status"] == "CLOSED" and closed.json()["closedAt"]
    for io in ("in", "out"):
        res = sessions_api.mint(session["id"], io)
        assert res.status == 409 and res.json()["code"] == "session_closed"
    for io, token in (("in", token_in), ("out", token_out)):
        res = sessions_api.append(session["id"], io, token, {"type": "text-delta"})
        assert res.status == 409 and res.json()["code"] == "session_closed"
    assert sessions_api.close(session["id"]).status == 200, "closing twice is fine"
    frames = parse_sse(sessions_api.read(session["id"], "out", headers={"last-event-id": "0-0"}).body)
    assert frames[-1].get("event") == "end"


def test_another_environments_session_is_404_on_every_route(sessions_api: SessionsApi) -> None:
    session = sessions_api.new(externalId="mine")
    sessions_api.call(
        "PUT",
        f"/api/v1/sessions/{session['id']}/snapshot",
        json_body=SNAPSHOT,
        headers=sessions_api.tenant.headers,
    )
    other = make_tenant("org_b", "env_b")
    for ref in (session["id"], "mine"):
        responses = [
            sessions_api.get(ref, tenant=other),
            sessions_api.close(ref, tenant=other),
            sessions_api.call("GET", f"/api/v1/sessions/{ref}/snapshot", headers=other.headers),
            sessions_api.call(
                "PUT", f"/api/v1/sessions/{ref}/snapshot", json_body=SNAPSHOT, headers=other.headers
            ),
            sessions_api.mint(ref, "in", tenant=other),
            sessions_api.mint(ref, "out", tenant=other),
            sessions_api.read(ref, "out", tenant=other),
            sessions_api.records(ref, "in", tenant=other),
        ]
        assert [r.status for r in responses] == [404] * len(responses), [r.body for r in responses]
    assert sessions_api.list(tenant=other).json()["data"] == []
    assert sessions_api.get(session["id"]).json()["status"] == "ACTIVE", (
        "the other environment closed nothing"
    )


def test_out_is_minted_only_with_a_secret_api_key(sessions_api: SessionsApi) -> None:
    session = sessions_api.new()
    token_in = sessions_api.token(session["id"], "in")
    res = sessions_api.mint(session["id"], "out", bearer=token_in)
    assert res.status == 401
    assert sessions_api.mint(session["id"], "out").status == 200
    assert sessions_api.mint(session["id"], "sideways").json()["code"] == "channel_not_found"


def test_a_token_writes_only_its_own_channel(sessions_api: SessionsApi) -> None:
    session = sessions_api.new()
    token_in = sessions_api.token(session["id"], "in")
    res = sessions_api.append(session["id"], "out", token_in, {"type": "text-delta"})
    assert res.status == 401 and res.json()["code"] == "invalid_stream_token"


def test_the_in_token_reads_both_channels_of_its_session_and_nothing_else(sessions_api: SessionsApi) -> None:
    """The browser's token: it sends on ``in`` and follows ``out`` of its one session."""
    session, other = sessions_api.new(), sessions_api.new()
    reply = {"type": "text-delta", "id": "t1", "delta": "hi"}
    sessions_api.append(session["id"], "out", sessions_api.token(session["id"], "out"), reply)
    browser = sessions_api.token(session["id"], "in")
    assert sessions_api.append(session["id"], "in", browser, {"n": 1}).status == 200

    def read(session_id: str, io: str, suffix: str = "") -> Any:
        path = f"/realtime/v1/sessions/{session_id}/{io}{suffix}"
        # From the start: an SSE read without Last-Event-ID would begin at the tail.
        headers = {"authorization": f"Bearer {browser}", "last-event-id": "0-0"}
        return sessions_api.call("GET", path, headers=headers)

    assert [r["data"] for r in read(session["id"], "out", "/records").json()["records"]] == [reply]
    assert [f["data"] for f in parse_sse(read(session["id"], "out").body) if "id" in f] == [
        json.dumps(reply, separators=(",", ":"))
    ]
    assert [r["data"] for r in read(session["id"], "in", "/records").json()["records"]] == [{"n": 1}]
    refused = [read(other["id"], "out", "/records"), read(other["id"], "in"), read(session["id"], "sideways")]
    assert [r.status for r in refused] == [401, 401, 404]
    assert sessions_api.append(session["id"], "out", browser, reply).status == 401, "it never writes out"


def test_channel_appends_dedup_by_part_id_and_read_back_in_order(sessions_api: SessionsApi) -> None:
    session = sessions_api.new()
    token = sessions_api.token(session["id"], "in")
    first = sessions_api.append(session["id"], "in", token, {"n": 1}, part_id="p1").json()
    retried = sessions_api.append(session["id"], "in", token, {"n": 1}, part_id="p1").json()
    sessions_api.append(session["id"], "in", token, {"n": 2}, part_id="p2")
    assert retried["ids"] == first["ids"] and retried["deduplicated"] == 1
    assert first["runId"] == session["currentRunId"], "the first run is alive: no continuation"
    records = sessions_api.records(session["id"], "in").json()
    assert [r["data"] for r in records["records"]] == [{"n": 1}, {"n": 2}] and records["closed"] is False
    after = sessions_api.records(session["id"], "in", after=first["ids"][0])
    assert [r["data"] for r in after.json()["records"]] == [{"n": 2}]
    frames = parse_sse(
        sessions_api.read(session["id"], "in", headers={"last-event-id": first["ids"][0]}).body
    )
    assert [f["data"] for f in frames if "id" in f] == ['{"n":2}']


def test_an_append_to_in_with_no_live_run_starts_one_continuation(sessions_api: SessionsApi) -> None:
    session = sessions_api.new(triggerConfig={"basePayload": {"model": "m", "message": "first only"}})
    first_run = session["currentRunId"]
    sessions_api.end_run(first_run)
    token = sessions_api.token(session["id"], "in")
    results: list[dict[str, Any]] = []
    barrier = threading.Barrier(8)

    def send(n: int) -> None:
        barrier.wait()
        results.append(sessions_api.append(session["id"], "in", token, {"n": n}).json())

    threads = [threading.Thread(target=send, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    continuation = {r["runId"] for r in results}
    assert len(continuation) == 1 and first_run not in continuation
    (run_id,) = continuation
    sent = sorted(m["runId"] for m in sessions_api.run_messages())
    assert sent == sorted([first_run, run_id]), "exactly one new run"
    assert run_payload(run_id) == {
        "model": "m",
        "sessionId": session["id"],
        "continuation": True,
        "previousRunId": first_run,
    }
    now = sessions_api.get(session["id"]).json()
    assert now["currentRunId"] == run_id and now["currentRunVersion"] == 2


def test_the_claim_is_atomic_on_the_version(sessions_api: SessionsApi) -> None:
    session = sessions_api.new()
    run_id = runs.run_id_for(session["id"], 2)
    assert table.claim_run(session["id"], 1, run_id) is True
    assert table.claim_run(session["id"], 1, "run_other") is False
    assert sessions_api.get(session["id"]).json()["currentRunId"] == run_id


def test_snapshot_is_stored_and_read_back(sessions_api: SessionsApi) -> None:
    session = sessions_api.new(externalId="chat-1")
    headers = sessions_api.tenant.headers
    missing = sessions_api.call("GET", "/api/v1/sessions/chat-1/snapshot", headers=headers)
    assert missing.status == 404 and missing.json()["code"] == "snapshot_not_found"
    put = sessions_api.call(
        "PUT", f"/api/v1/sessions/{session['id']}/snapshot", json_body=SNAPSHOT, headers=headers
    )
    assert put.status == 200, put.body
    got = sessions_api.call("GET", "/api/v1/sessions/chat-1/snapshot", headers=headers)
    assert got.status == 200 and got.json() == SNAPSHOT


@pytest.mark.parametrize("body", [{**SNAPSHOT, "version": 2}, {"messages": "no"}, "not json"])
def test_an_invalid_snapshot_is_4xx_and_keeps_the_stored_one(sessions_api: SessionsApi, body: Any) -> None:
    session = sessions_api.new()
    headers = sessions_api.tenant.headers
    path = f"/api/v1/sessions/{session['id']}/snapshot"
    sessions_api.call("PUT", path, json_body=SNAPSHOT, headers=headers)
    res = (
        sessions_api.call("PUT", path, body=body, headers=headers)
        if isinstance(body, str)
        else sessions_api.call("PUT", path, json_body=body, headers=headers)
    )
    assert res.status == 422 and res.json()["code"] == "invalid_snapshot"
    assert sessions_api.call("GET", path, headers=headers).json() == SNAPSHOT


def test_the_streamed_transport_reads_a_channel_with_resume(
    sessions_api: SessionsApi, stream_app_url: str
) -> None:
    session = sessions_api.new(externalId="streamed")
    token = sessions_api.token(session["id"], "out")
    ids = [sessions_api.append(session["id"], "out", token, {"n": n}).json()["ids"][0] for n in range(3)]
    sessions_api.close(session["id"])
    for ref, bearer in (
        (session["id"], sessions_api.tenant.api_key),
        ("streamed", sessions_api.tenant.api_key),
    ):
        url = f"{stream_app_url}/realtime/v1/sessions/{ref}/out"
        headers = {"authorization": f"Bearer {bearer}", "last-event-id": ids[0]}
        frames = parse_sse(httpx.get(url, headers=headers, timeout=10).text)
        assert [(f["id"], f["data"]) for f in frames if "id" in f] == [
            (ids[1], '{"n":1}'),
            (ids[2], '{"n":2}'),
        ]
        assert frames[-1].get("event") == "end"
    other = make_tenant("org_b", "env_b")
    url = f"{stream_app_url}/realtime/v1/sessions/{session['id']}/out"
    assert httpx.get(url, headers=other.headers, timeout=10).status_code == 404


def _run_store_down(*_: Any, **__: Any) -> Any:
    raise ServiceUnavailable("The run store is unavailable; retry shortly")


def test_a_run_store_outage_keeps_the_message_and_the_next_append_starts_the_run(
    sessions_api: SessionsApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = sessions_api.new()
    sessions_api.end_run(session["currentRunId"])
    token = sessions_api.token(session["id"], "in")

    with monkeypatch.context() as patch:
        patch.setattr("sluice.engine.store.create_run", _run_store_down)
        kept = sessions_api.append(session["id"], "in", token, {"n": 1})
    assert kept.status == 200 and kept.json()["runId"] is None and kept.json()["appended"] == 1
    retried = sessions_api.append(session["id"], "in", token, {"n": 2}).json()
    assert retried["runId"] == runs.run_id_for(session["id"], 2)
    # (in either order: the dispatcher sends different runs from parallel batches)
    sent = sorted(m["runId"] for m in sessions_api.run_messages())
    assert sent == sorted([session["currentRunId"], retried["runId"]])
    assert [r["data"] for r in sessions_api.records(session["id"], "in").json()["records"]] == [
        {"n": 1},
        {"n": 2},
    ]


def test_records_come_in_pages_and_the_client_reads_them_all(
    sessions_api: SessionsApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sluice.streams.reader.RECORDS_MAX", 150)
    session = sessions_api.new()
    token = sessions_api.token(session["id"], "in")
    body = b"".join(json.dumps({"data": n}).encode() + b"\n" for n in range(400))
    headers = {"authorization": f"Bearer {token}", "content-type": "application/x-ndjson"}
    sessions_api.call("POST", f"/realtime/v1/sessions/{session['id']}/in/append", body=body, headers=headers)
    first = sessions_api.records(session["id"], "in").json()
    assert first["hasMore"] is True and [r["data"] for r in first["records"]] == list(
        range(len(first["records"]))
    )
    seen, after = [], None
    while True:
        page = sessions_api.records(session["id"], "in", after=after).json()
        seen += [r["data"] for r in page["records"]]
        if not page["hasMore"]:
            break
        after = page["records"][-1]["id"]
    assert seen == list(range(400))


def test_a_create_whose_run_write_failed_is_completed_by_its_retry(
    sessions_api: SessionsApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patch:
        patch.setattr("sluice.engine.store.create_run", _run_store_down)
        failed = sessions_api.create(externalId="retry-me")
    assert failed.status == 503 and failed.json()["code"] == "service_unavailable"
    retried = sessions_api.create(externalId="retry-me").json()
    assert retried["isCached"] is True
    assert [m["runId"] for m in sessions_api.run_messages()] == [retried["currentRunId"]]


def _lifecycle(sessions_api: SessionsApi, run_id: str, action: str, body: Any = None) -> dict[str, Any]:
    res = sessions_api.call(
        "POST", f"/api/v1/runs/{run_id}/{action}", json_body=body, headers=sessions_api.tenant.headers
    )
    assert res.status == 200, res.body
    return dict(res.json())


def _session_with_a_started_run(sessions_api: SessionsApi) -> tuple[dict[str, Any], str, str, str]:
    """A new session, its first run started by a worker: (session, run id, `in` token, lease)."""
    session = sessions_api.new()
    first_run = session["currentRunId"]
    token = sessions_api.token(session["id"], "in")
    lease = _lifecycle(sessions_api, first_run, "start")["leaseToken"]
    return session, first_run, token, lease


def test_a_live_run_takes_the_message_and_a_completed_one_gets_a_continuation(
    sessions_api: SessionsApi,
) -> None:
    session, first_run, token, lease = _session_with_a_started_run(sessions_api)
    assert sessions_api.append(session["id"], "in", token, {"n": 1}).json()["runId"] == first_run
    _lifecycle(sessions_api, first_run, "complete", {"leaseToken": lease})
    continuation = sessions_api.append(session["id"], "in", token, {"n": 2}).json()["runId"]
    assert continuation not in (None, first_run)
    assert run_payload(continuation)["previousRunId"] == first_run


def test_a_run_lost_for_good_gets_a_continuation_on_the_next_message(
    sessions_api: SessionsApi,
) -> None:
    session, first_run, token, lease = _session_with_a_started_run(sessions_api)
    failed = _lifecycle(
        sessions_api, first_run, "fail", {"leaseToken": lease, "error": "oom", "retry": False}
    )
    assert failed["status"] == "FAILED"
    continuation = sessions_api.append(session["id"], "in", token, {"n": 1}).json()["runId"]
    assert continuation not in (None, first_run)


# --- out fenced on the attempt: a worker of a lost, retried or canceled run cannot write out ------
def _leased_out(sessions_api: SessionsApi, session_id: str, lease: str) -> HttpResult:
    headers = {**sessions_api.tenant.headers, "x-lease-token": lease}
    return sessions_api.call("PUT", f"/realtime/v1/sessions/{session_id}/out", headers=headers)


def _run_call(sessions_api: SessionsApi, run_id: str, action: str, body: dict[str, Any]) -> HttpResult:
    return sessions_api.call(
        "POST", f"/api/v1/runs/{run_id}/{action}", json_body=body, headers=sessions_api.tenant.headers
    )


def test_a_retried_attempt_of_the_sessions_run_can_no_longer_write_out(
    sessions_api: SessionsApi, retry_at_once: None
) -> None:
    session = sessions_api.new(externalId="fenced")
    run_id = session["currentRunId"]
    assert _run_call(sessions_api, run_id, "start", {"leaseToken": "lease-one-" + "x" * 8}).status == 200
    first = _leased_out(sessions_api, session["id"], "lease-one-" + "x" * 8).json()["token"]
    assert sessions_api.append(session["id"], "out", first, {"n": 1}).status == 200

    failed = _run_call(sessions_api, run_id, "fail", {"leaseToken": "lease-one-" + "x" * 8, "error": "lost"})
    assert failed.json()["status"] == "QUEUED"

    late = sessions_api.append(session["id"], "out", first, {"n": "late"})
    assert (late.status, late.json()["code"]) == (409, "stale_lease")
    stale = _leased_out(sessions_api, session["id"], "lease-one-" + "x" * 8)
    assert (stale.status, stale.json()["code"]) == (409, "stale_lease")
    assert _run_call(sessions_api, run_id, "start", {"leaseToken": "lease-two-" + "x" * 8}).status == 200
    second = _leased_out(sessions_api, session["id"], "lease-two-" + "x" * 8).json()["token"]
    assert sessions_api.append(session["id"], "out", second, {"n": 2}).status == 200


def test_a_canceled_sessions_run_can_no_longer_write_out(sessions_api: SessionsApi) -> None:
    session = sessions_api.new(externalId="canceled")
    run_id = session["currentRunId"]
    lease = "lease-of-the-run-" + "x" * 8
    assert _run_call(sessions_api, run_id, "start", {"leaseToken": lease}).status == 200
    token = _leased_out(sessions_api, session["id"], lease).json()["token"]

    canceled = sessions_api.call("POST", f"/api/v2/runs/{run_id}/cancel", headers=sessions_api.tenant.headers)
    assert canceled.status == 200

    late = sessions_api.append(session["id"], "out", token, {"n": "late"})
    assert (late.status, late.json()["code"]) == (409, "stale_lease")


def test_the_trigger_dev_sdks_field_names_and_paging(sessions_api: SessionsApi) -> None:
    """The SDK creates with ``taskIdentifier``, pages with ``page[size]``/``page[after]`` and reads
    ``pagination.next`` (absent on the last page)."""
    created = sessions_api.create(type="chat", taskIdentifier="sdk-agent")
    assert created.status == 200, created.body
    made = created.json()
    assert made["taskId"] == made["taskIdentifier"] == "sdk-agent"
    others = [sessions_api.new(type="chat")["id"] for _ in range(2)]

    seen: list[str] = []
    after = ""
    while True:
        page = sessions_api.list(f"page[size]=2&page[after]={after}").json()
        assert len(page["data"]) <= 2
        seen += [s["id"] for s in page["data"]]
        if "next" not in page["pagination"]:
            break
        after = page["pagination"]["next"]
    assert seen[:3] == [*reversed(others), made["id"]]
