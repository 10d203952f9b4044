"""The trigger.dev SDK's side of streams through the real handler: its v1 writes
(``streams.ingest_v1``) and its read dialect (``streams.framing``)."""

from __future__ import annotations

import json
from typing import Any

from sluice import engine
from sluice.engine import TriggerBody, TriggerOptions
from tests.conftest import make_tenant
from tests.unit.streams.conftest import NDJSON, StreamsApi, ndjson, new_run, parse_sse

SDK = {"x-trigger-realtime-streams-version": "v2"}


def path(run_id: str, key: str = "out", target: str = "self") -> str:
    return f"/realtime/v1/streams/{run_id}/{target}/{key}"


def post(api: StreamsApi, run_id: str, lines: list[Any], resume: int = 0, client: str = "c1") -> Any:
    headers = {**api.tenant.headers, **NDJSON, "x-client-id": client, "x-resume-from-chunk": str(resume)}
    return api.call("POST", path(run_id), body=ndjson(lines), headers=headers)


def chunks(api: StreamsApi, run_id: str, key: str = "out") -> list[Any]:
    body = api.read(run_id, key).body
    return [json.loads(f["data"]) for f in parse_sse(body) if "id" in f]


def test_the_sdk_writer_creates_posts_and_resumes(api: StreamsApi) -> None:
    run_id = new_run(api.tenant)
    created = api.call("PUT", path(run_id), headers=api.tenant.headers)
    assert created.status == 200 and created.json() == {"version": "v1"}

    head = api.call("HEAD", path(run_id), headers={**api.tenant.headers, "x-client-id": "c1"})
    assert head.headers["X-Last-Chunk-Index"] == "-1"
    # A first body that the server took whole, then a resend from chunk 1 after the writer lost
    # its connection: chunk 1 lands once.
    assert post(api, run_id, ["a", "b"]).headers["X-Last-Chunk-Index"] == "1"
    head = api.call("HEAD", path(run_id), headers={**api.tenant.headers, "x-client-id": "c1"})
    assert head.headers["X-Last-Chunk-Index"] == "1"
    assert chunks(api, run_id) == ["a", "b"]


def test_a_resent_chunk_lands_once(api: StreamsApi) -> None:
    """The body landed whole (and closed the stream) but the writer never heard back: it resends
    from where HEAD said, or from 0 when HEAD failed too. Nothing lands twice, nothing is refused."""
    run_id = new_run(api.tenant)
    assert post(api, run_id, ["x", "y", "z"], client="w").status == 200
    again = post(api, run_id, ["y", "z"], resume=1, client="w")
    assert again.status == 200 and again.headers["X-Last-Chunk-Index"] == "2"
    assert post(api, run_id, ["x", "y", "z"], client="w").status == 200
    assert chunks(api, run_id) == ["x", "y", "z"]
    # The stream closed when the first body ended: a reader hears the end.
    assert parse_sse(api.read(run_id).body)[-1] == {"event": "end", "data": ""}


def test_append_adds_the_body_as_one_chunk(api: StreamsApi) -> None:
    run_id = new_run(api.tenant)
    res = api.call("POST", path(run_id, key="log") + "/append", body=b"first", headers=api.tenant.headers)
    assert res.status == 200 and res.json() == {"ok": True}
    assert chunks(api, run_id, "log") == ["first"]


def test_parent_and_root_targets_resolve_from_the_run(api: StreamsApi) -> None:
    root = new_run(api.tenant)

    def child_of(run_id: str) -> str:
        body = TriggerBody(options=TriggerOptions(parentRunId=run_id))
        return engine.trigger(api.tenant.env, "agent", body).id

    parent = child_of(root)
    child = child_of(parent)
    for target, owner in (("self", child), ("parent", parent), ("root", root)):
        url = path(child, key=f"t-{target}", target=target) + "/append"
        res = api.call("POST", url, body=b"hi", headers=api.tenant.headers)
        assert res.status == 200, res.body
        assert chunks(api, owner, f"t-{target}") == ["hi"]


def test_another_tenants_run_or_an_unknown_target_is_a_404(api: StreamsApi) -> None:
    run_id = new_run(api.tenant)
    other = make_tenant(org_id="org_other", env_id=api.tenant.env.env_id)
    assert api.call("PUT", path(run_id), headers=other.headers).status == 404
    assert api.call("PUT", path(run_id, target="sibling"), headers=api.tenant.headers).status == 404
    bad = api.call(
        "POST", path(run_id), body=b"not json\n", headers={**api.tenant.headers, "x-client-id": "c"}
    )
    assert bad.status == 400 and bad.json()["code"] == "invalid_ndjson"
    headers = {**api.tenant.headers, "x-resume-from-chunk": "-1"}
    resume = api.call("POST", path(run_id), body=b"1\n", headers=headers)
    assert resume.status == 400 and resume.json()["code"] == "invalid_resume_chunk"


def test_the_sdk_dialect_batches_chunks_and_ends_with_the_body(api: StreamsApi) -> None:
    run_id = new_run(api.tenant)
    post(api, run_id, [{"n": 1}, "two"])
    res = api.read(run_id, headers=SDK)
    assert res.headers["x-stream-version"] == "v2"
    frames = parse_sse(res.body)
    assert [f["event"] for f in frames] == ["batch", "batch"]  # no end frame: the body's end says it
    records = [json.loads(f["data"])["records"][0] for f in frames]
    assert [json.loads(r["body"])["data"] for r in records] == [{"n": 1}, "two"]
    assert all(r["seq_num"] == json.loads(r["body"])["id"] for r in records)


def test_the_sdk_dialect_cuts_an_open_stream_with_an_error_event(api: StreamsApi) -> None:
    run_id = new_run(api.tenant)
    token = api.token(run_id)
    api.append(run_id, "out", token, "only")
    frames = parse_sse(api.read(run_id, headers=SDK).body)
    assert frames[0]["event"] == "batch"
    assert frames[-1]["event"] == "error"  # the SDK reconnects from its cursor on it
