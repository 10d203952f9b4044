"""The streams routes through their real handler: mint, append, close, the long-poll read."""

from __future__ import annotations

import re
import threading
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from sluice import engine, streams
from sluice.config import get_settings
from sluice.engine import RunError, TriggerBody
from sluice.streams import StreamAddress
from sluice.streams.keys import StreamKeys
from tests.conftest import make_tenant
from tests.unit.streams.conftest import NDJSON, StreamsApi, ndjson, new_run, parse_sse


def data_frames(text: str) -> list[dict[str, str]]:
    return [f for f in parse_sse(text) if "data" in f and f.get("event") != "end"]


def stored(api: StreamsApi, run_id: str, key: str = "out") -> list[Any]:
    entries = api.redis.xrange(StreamKeys(StreamAddress.run(run_id, key)).data)
    return [fields for _, fields in entries]


def test_mint_answers_credentials_for_the_stream(api: StreamsApi) -> None:
    run_id = new_run(api.tenant)
    res = api.mint(run_id, "out")
    assert res.status == 200, res.body
    body = res.json()
    assert set(body) == {"streamId", "appendUrl", "readUrl", "token", "expiresAt"}
    assert body["streamId"] == f"runs/{run_id}/out"
    assert body["appendUrl"].endswith(f"/realtime/v1/streams/{run_id}/out/append")
    assert body["readUrl"].endswith(f"/realtime/v1/streams/{run_id}/out")
    assert streams.stream_keys(run_id) == {"out"}


def test_mint_for_a_run_of_another_environment_is_404(api: StreamsApi) -> None:
    other = make_tenant("org_b", "env_b")
    run_id = new_run(other)
    res = api.mint(run_id)
    assert res.status == 404
    assert streams.stream_keys(run_id) == set()


def test_mint_on_a_finished_run_is_400_run_finished(api: StreamsApi) -> None:
    run = engine.trigger(api.tenant.env, "agent", TriggerBody(), error=RunError(code="x", message="y"))
    res = api.mint(run.id)
    assert res.status == 400
    assert res.json()["code"] == "run_finished"


def test_concurrent_first_mints_record_each_key_once(api: StreamsApi) -> None:
    run_id = new_run(api.tenant)
    statuses: list[int] = []
    barrier = threading.Barrier(16)

    def mint(key: str) -> None:
        barrier.wait()
        statuses.append(api.mint(run_id, key).status)

    threads = [threading.Thread(target=mint, args=("out" if i % 2 else "log",)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 16
    item = api.aws.dynamodb.get_item(
        TableName=api.aws.stack.physical_name("RunsTable"), Key={"runId": {"S": run_id}}
    )["Item"]
    assert sorted(item["streamKeys"]["SS"]) == ["log", "out"]


def test_the_run_names_its_streams(api: StreamsApi) -> None:
    run_id = new_run(api.tenant)
    for key in ("out", "log", "out"):
        assert api.mint(run_id, key).status == 200
    run = api.call("GET", f"/api/v1/runs/{run_id}", headers=api.tenant.headers).json()
    assert run["streamKeys"] == ["log", "out"]


def test_json_append_then_long_poll_reads_it_with_its_entry_id(api: StreamsApi) -> None:
    run_id = new_run(api.tenant)
    token = api.token(run_id)
    first = api.append(run_id, "out", token, {"delta": "he"})
    assert first.status == 200, first.body
    res = api.read(run_id, query="lastEventId=0-0")
    assert res.status == 200
    assert res.headers["Content-Type"].startswith("text/event-stream")
    frames = data_frames(res.body)
    assert [f["data"] for f in frames] == ['{"delta":"he"}']
    assert frames[0]["id"] == first.json()["ids"][0]
    # The long poll's own retry: hint, short, so that a browser's EventSource polls again at once.
    assert {"retry": str(get_settings().sse_long_poll_retry_ms)} in parse_sse(res.body)
    assert get_settings().sse_long_poll_retry_ms < get_settings().sse_retry_ms


def test_ndjson_append_lands_many_chunks_in_order(api: StreamsApi) -> None:
    run_id = new_run(api.tenant)
    token = api.token(run_id)
    res = api.append(run_id, "out", token, body=ndjson([{"data": i} for i in range(50)]), headers=NDJSON)
    assert res.status == 200, res.body
    assert res.json()["appended"] == 50
    assert [f["d"] for f in stored(api, run_id)] == [str(i) for i in range(50)]


def test_a_retried_append_with_its_part_id_lands_once(api: StreamsApi) -> None:
    run_id = new_run(api.tenant)
    token = api.token(run_id)
    first = api.append(run_id, "out", token, {"n": 1}, headers={"x-part-id": "p-1"})
    again = api.append(run_id, "out", token, {"n": 1}, headers={"x-part-id": "p-1"})
    assert again.json()["ids"] == first.json()["ids"]
    assert again.json()["deduplicated"] == 1
    lines = ndjson([{"data": "a", "partId": "x"}, {"data": "b", "partId": "y"}])
    api.append(run_id, "out", token, body=lines, headers=NDJSON)
    replay = api.append(run_id, "out", token, body=lines, headers=NDJSON)
    assert replay.json()["deduplicated"] == 2
    batch = ndjson([{"data": "c"}, {"data": "d"}])
    api.append(run_id, "out", token, body=batch, headers={**NDJSON, "x-part-id": "req-9"})
    api.append(run_id, "out", token, body=batch, headers={**NDJSON, "x-part-id": "req-9"})
    assert [f["d"] for f in stored(api, run_id)] == ['{"n":1}', '"a"', '"b"', '"c"', '"d"']


def test_an_oversized_chunk_is_413_and_nothing_of_the_request_is_appended(
    api: StreamsApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLUICE_STREAM_CHUNK_MAX_BYTES", "100")
    from sluice.config import reload_settings

    reload_settings()
    run_id = new_run(api.tenant)
    token = api.token(run_id)
    res = api.append(run_id, "out", token, {"text": "x" * 200})
    assert res.status == 413
    assert res.json()["code"] == "chunk_too_large"
    body = ndjson([{"data": "small"}, {"data": "y" * 200}])
    res = api.append(run_id, "out", token, body=body, headers=NDJSON)
    assert res.status == 413
    assert stored(api, run_id) == []


@pytest.mark.parametrize(
    ("body", "headers", "code"),
    [
        (b"{not json", {"content-type": "application/json"}, "invalid_json"),
        (b'{"data": 1}\n{"nodata": 2}\n', NDJSON, "invalid_ndjson"),
        (b'{"data": 1}\nnot json\n', NDJSON, "invalid_ndjson"),
        (b'{"data": 1}', {**NDJSON, "x-part-id": "p" * 300}, "invalid_part_id"),
    ],
)
def test_a_bad_append_body_is_400_and_appends_nothing(
    api: StreamsApi, body: bytes, headers: dict[str, str], code: str
) -> None:
    run_id = new_run(api.tenant)
    token = api.token(run_id)
    res = api.append(run_id, "out", token, body=body, headers=headers)
    assert res.status == 400, res.body
    assert res.json()["code"] == code
    assert stored(api, run_id) == []


def test_close_ends_the_stream_for_readers_and_refuses_appends(api: StreamsApi) -> None:
    run_id = new_run(api.tenant)
    token = api.token(run_id)
    api.append(run_id, "out", token, "last")
    assert api.close(run_id, "out", token).json() == {"closed": True, "alreadyClosed": False}
    assert api.close(run_id, "out", token).json()["alreadyClosed"] is True
    refused = api.append(run_id, "out", token, "late")
    assert refused.status == 409
    assert refused.json()["code"] == "stream_closed"
    frames = parse_sse(api.read(run_id, query="lastEventId=0-0").body)
    assert frames[-1] == {"event": "end", "data": ""}
    assert "retry" not in frames[-1]
    # A reader arriving after the close hears the end at once from the tail, and the whole
    # stream, then the end, from the beginning.
    assert parse_sse(api.read(run_id, query="from=latest").body) == [{"event": "end", "data": ""}]
    assert [f.get("data") for f in parse_sse(api.read(run_id).body)] == ['"last"', ""]


def test_close_run_streams_closes_every_key_of_the_run(api: StreamsApi) -> None:
    run_id = new_run(api.tenant)
    tokens = {key: api.token(run_id, key) for key in ("out", "log")}
    assert streams.close_run_streams(run_id) == 2
    assert streams.close_run_streams(run_id) == 0
    for key, token in tokens.items():
        assert api.append(run_id, key, token, "late").status == 409


def test_long_poll_with_nothing_new_answers_a_keep_alive_and_retry(api: StreamsApi) -> None:
    run_id = new_run(api.tenant)
    api.token(run_id)
    answer = api.read(run_id, query="from=latest")
    frames = parse_sse(answer.body)
    # The snapshot's cursor as a data-less id (EventSource's next Last-Event-ID), then the keep-alive.
    assert frames[0] == {"id": answer.headers[streams.CURSOR_HEADER]}
    assert frames[1] == {"": "keep-alive"}
    assert "retry" in frames[-1]
    assert all("id" not in f for f in frames[1:])
    # Resumed from there, the next answer carries no cursor frame.
    resumed = parse_sse(api.read(run_id, query=f"lastEventId={frames[0]['id']}").body)
    assert resumed[0] == {"": "keep-alive"}


def test_long_poll_resumes_after_last_event_id_header(api: StreamsApi) -> None:
    run_id = new_run(api.tenant)
    token = api.token(run_id)
    ids = api.append(run_id, "out", token, body=ndjson([{"data": i} for i in range(3)]), headers=NDJSON)
    first_id = ids.json()["ids"][0]
    res = api.read(run_id, headers={"last-event-id": first_id})
    assert [f["data"] for f in data_frames(res.body)] == ["1", "2"]
    bad = api.read(run_id, headers={"last-event-id": "$"})
    assert bad.status == 400
    assert bad.json()["code"] == "invalid_last_event_id"


def test_a_read_is_authorised_by_the_stream_token_too(api: StreamsApi) -> None:
    run_id = new_run(api.tenant)
    token = api.token(run_id)
    api.append(run_id, "out", token, 1)
    assert api.read(run_id, bearer=token, query="lastEventId=0-0").status == 200
    assert api.read(run_id, query=f"lastEventId=0-0&token={token}").status == 200
    other = make_tenant("org_b", "env_b")
    assert api.read(run_id, bearer=other.api_key).status == 404
    assert api.read(run_id, bearer="sk_dev_unknown").status == 401


def test_records_answer_what_the_stream_holds_now_and_resume_after_an_id(api: StreamsApi) -> None:
    run_id = new_run(api.tenant)
    token = api.token(run_id)
    assert api.records(run_id).json() == {"records": [], "closed": False, "hasMore": False}
    res = api.append(run_id, "out", token, body=ndjson([{"data": i} for i in range(3)]), headers=NDJSON)
    ids = res.json()["ids"]
    page = api.records(run_id).json()
    assert [(r["id"], r["data"]) for r in page["records"]] == list(zip(ids, range(3), strict=True))
    assert [r["data"] for r in api.records(run_id, query=f"after={ids[0]}").json()["records"]] == [1, 2]
    api.close(run_id, "out", token)
    assert api.records(run_id, bearer=token).json()["closed"] is True


def test_records_are_refused_as_the_long_poll_is(api: StreamsApi) -> None:
    run_id = new_run(api.tenant)
    api.token(run_id)
    assert api.records(run_id, query="after=$").json()["code"] == "invalid_last_event_id"
    assert api.records(run_id, bearer="sk_dev_unknown").status == 401
    assert api.records(run_id, bearer=make_tenant("org_b", "env_b").api_key).json()["code"] == "not_found"
    assert api.records("run_nope").status == 404


def test_redis_down_is_503_and_the_retry_lands_once(api: StreamsApi, monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = new_run(api.tenant)
    token = api.token(run_id)
    store = streams.get_store()
    script = store._append

    def lost_reply(*args: Any, **kwargs: Any) -> Any:
        script(*args, **kwargs)  # the script ran, but its reply never came back
        raise ConnectionError("connection reset")

    monkeypatch.setattr(store, "_append", lost_reply)
    lines = ndjson([{"data": i} for i in range(5)])
    res = api.append(run_id, "out", token, body=lines, headers={**NDJSON, "x-part-id": "req-1"})
    assert res.status == 503
    monkeypatch.setattr(store, "_append", script)
    retry = api.append(run_id, "out", token, body=lines, headers={**NDJSON, "x-part-id": "req-1"})
    assert retry.json()["deduplicated"] == 5
    assert [f["d"] for f in stored(api, run_id)] == [str(i) for i in range(5)]


def test_redis_unreachable_is_503_with_nothing_appended(
    api: StreamsApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sluice.config import reload_settings
    from sluice.redis import reset_redis

    run_id = new_run(api.tenant)
    token = api.token(run_id)
    monkeypatch.setenv("SLUICE_REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("SLUICE_REDIS_RETRIES", "0")
    reload_settings()
    reset_redis()
    res = api.append(run_id, "out", token, body=ndjson([{"data": 1}, {"data": 2}]), headers=NDJSON)
    assert res.status == 503
    assert res.json()["code"] == "service_unavailable"
    assert stored(api, run_id) == []


@pytest.mark.parametrize(
    "cursor",
    ["99999999999999999999-0", "1-99999999999999999999", "18446744073709551616-0", "1-", "$"],
)
def test_a_cursor_redis_cannot_hold_is_400_on_every_read(api: StreamsApi, cursor: str) -> None:
    run_id = new_run(api.tenant)
    api.append(run_id, "out", api.token(run_id), 1)
    for res in (
        api.read(run_id, headers={"last-event-id": cursor}),
        api.read(run_id, query=f"lastEventId={cursor}"),
        api.records(run_id, query=f"after={cursor}"),
    ):
        assert (res.status, res.json()["code"]) == (400, "invalid_last_event_id"), res.body


def test_the_documented_cursor_pattern_is_the_rule_the_server_applies(api: StreamsApi) -> None:
    """Every cursor the pattern admits is read (Redis holds it), every other is a 400."""
    run_id = new_run(api.tenant)
    api.append(run_id, "out", api.token(run_id), 1)
    for cursor in ["0-0", "9999999999999999999-9999999999999999999", "1700000000000-0", "0", "01-00"]:
        documented = re.fullmatch(streams.ENTRY_ID_PATTERN, cursor) is not None
        res = api.records(run_id, query=f"after={cursor}")
        assert res.status == (200 if documented else 400), (cursor, res.body)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b'{"x": 1e400}', 400, "invalid_json"),
        (b"[NaN]", 400, "invalid_json"),
        (b"[" * 10_000 + b"]" * 10_000, 422, "payload_too_deep"),
        (b"[" * 129 + b"]" * 129, 422, "payload_too_deep"),
    ],
    ids=["1e400", "NaN", "10000-deep", "129-deep"],
)
def test_a_chunk_json_cannot_store_is_refused_and_nothing_is_appended(
    api: StreamsApi, body: bytes, status: int, code: str
) -> None:
    run_id = new_run(api.tenant)
    token = api.token(run_id)
    res = api.append(run_id, "out", token, body=body, headers={"content-type": "application/json"})
    assert (res.status, res.json()["code"]) == (status, code), res.body
    line = b'{"data": 1}\n{"data": ' + body + b"}\n"
    res = api.append(run_id, "out", token, body=line, headers=NDJSON)
    assert (res.status, res.json()["code"]) == (400, "invalid_ndjson"), res.body
    assert res.json()["issues"][0]["line"] == 2
    assert stored(api, run_id) == []


def test_a_chunk_at_the_depth_limit_is_appended(api: StreamsApi) -> None:
    run_id = new_run(api.tenant)
    body = b"[" * 128 + b"]" * 128
    res = api.append(
        run_id, "out", api.token(run_id), body=body, headers={"content-type": "application/json"}
    )
    assert res.status == 200, res.body


@pytest.mark.parametrize(
    "key", ["a b", "a\x00b", "tab\there", "\x7f", "x" * 257], ids=["space", "nul", "tab", "del", "257"]
)
def test_a_stream_key_with_a_space_or_a_control_character_is_400(api: StreamsApi, key: str) -> None:
    run_id = new_run(api.tenant)
    res = api.mint(run_id, quote(key, safe=""))  # a raw NUL or tab in a path is no route at all
    assert (res.status, res.json()["code"]) == (400, "invalid_stream_key"), res.body
    assert streams.stream_keys(run_id) == set()
    assert re.fullmatch(streams.STREAM_KEY_PATTERN, key) is None, "the documented pattern agrees"


def test_a_key_that_needs_encoding_is_one_stream_through_the_urls_the_mint_hands_out(api: StreamsApi) -> None:
    run_id = new_run(api.tenant)
    minted = api.mint(run_id, quote("chat:ü%", safe="")).json()
    assert minted["streamId"] == f"runs/{run_id}/chat:ü%"
    append_path = urlsplit(minted["appendUrl"]).path
    res = api.call(
        "POST", append_path, json_body={"n": 1}, headers={"authorization": f"Bearer {minted['token']}"}
    )
    assert res.status == 200, res.body
    assert stored(api, run_id, "chat:ü%") != []
    read = api.call("GET", urlsplit(minted["readUrl"]).path + "/records", headers=api.tenant.headers)
    assert [r["data"] for r in read.json()["records"]] == [{"n": 1}]


def test_a_read_starts_where_the_trigger_dev_sdk_asks(api: StreamsApi) -> None:
    """No cursor: the beginning; an integer Last-Event-ID: after that many chunks (the SDK's
    ``startIndex`` - 1); ``X-Trigger-Stream-Start: latest``: the tail."""
    run_id = new_run(api.tenant)
    token = api.token(run_id)
    for word in ("a", "b", "c"):
        api.append(run_id, "out", token, word)

    def data(**kwargs: Any) -> list[str]:
        return [f["data"] for f in parse_sse(api.read(run_id, **kwargs).body) if "id" in f and "data" in f]

    assert data() == ['"a"', '"b"', '"c"']
    assert data(headers={"last-event-id": "2"}) == ['"c"']
    assert data(query="lastEventId=1") == ['"b"', '"c"']
    assert data(headers={"x-trigger-stream-start": "latest"}) == []
    assert data(headers={"last-event-id": "0"}) == ['"a"', '"b"', '"c"']  # startIndex 1
    refused = api.read(run_id, headers={"last-event-id": "-1"})
    assert refused.status == 400 and refused.json()["code"] == "invalid_last_event_id"
    # A count is a read's start only: the drained records take entry ids.
    assert api.records(run_id, query="after=0").json()["code"] == "invalid_last_event_id"
