"""A tenant is (organization, environment): every route in openapi.json, called with another
tenant's credentials against what the owner made, answers 401 or 404 and changes nothing.

Two other tenants call: an organization whose environment has the owner's id (environment ids are
names an operator chooses, so two organizations both have ``prod``), and another environment of
the owner's organization. Each calls with its API key and, where a route takes stream tokens, with
a token minted for its own stream and with a token signed for itself but naming the owner's stream
(what a token minted through a broken check would be). The routes come from the document, so a new
route is in the matrix without a change here; a route that needs a body this file does not know
gets ``{}`` and must still answer 401/404.

A collection route (its path names no resource: trigger, batch create, session create and list)
answers the caller about its own tenant: it may succeed, but never with an owner's resource (the
owner's idempotency keys and externalId are reused to tempt it).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from sluice.streams import StreamAddress
from sluice.streams.tokens import mint_token
from tests.conftest import AwsStack, HttpResult, Tenant, make_tenant

OPENAPI = json.loads((Path(__file__).resolve().parents[2] / "openapi.json").read_text())
# Every route that takes credentials; a public one (``security: [{}]``, the console's files) holds
# nothing of a tenant.
ROUTES = [
    (method.upper(), path)
    for path, item in OPENAPI["paths"].items()
    for method, operation in item.items()
    if operation.get("security") != [{}]
]
TOKEN_SCHEMES = {"streamToken", "streamTokenQuery"}
JSON = {"content-type": "application/json"}
NDJSON = {"content-type": "application/x-ndjson"}
IDEMPOTENCY_KEY = "owner-key"
EXTERNAL_ID = "chat-owner"
SNAPSHOT = {"savedAt": "2026-01-01T00:00:00Z", "messages": []}
# What a tempting call sends on each route (a leak then shows as a 2xx, not as a 400 for the body).
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/api/v1/tasks/{taskId}/trigger"): {
        "payload": {"x": 1},
        "options": {"idempotencyKey": IDEMPOTENCY_KEY},
    },
    ("POST", "/api/v3/batches"): {"runCount": 1, "idempotencyKey": IDEMPOTENCY_KEY},
    ("POST", "/api/v1/sessions"): {"externalId": EXTERNAL_ID, "type": "chat", "taskId": "agent"},
    ("PUT", "/api/v1/sessions/{session}/snapshot"): {**SNAPSHOT, "savedAt": "2026-02-02T00:00:00Z"},
    ("POST", "/api/v3/batches/{batchId}/payloads"): {"indices": [0]},
    ("POST", "/realtime/v1/streams/{runId}/{key}/append"): {"forged": True},
    ("POST", "/realtime/v1/sessions/{session}/{io}/append"): {"forged": True},
}


@dataclass
class Owned:
    """What the owner made, and the owner's view of it."""

    tenant: Tenant
    queued_run: str  # QUEUED, with a stream ``out`` holding one record
    started_run: str  # EXECUTING under ``lease``
    lease: str
    batch: str
    session: str

    def ids(self) -> list[str]:
        return [self.queued_run, self.started_run, self.batch, self.session]


def _ok(res: HttpResult) -> Any:
    assert 200 <= res.status < 300, res.body
    return res.json()


@pytest.fixture
def owned(aws: AwsStack, redis_client: redis.Redis, call_api: Any, monkeypatch: pytest.MonkeyPatch) -> Owned:
    monkeypatch.setenv("SLUICE_SSE_WINDOW_S", "0.2")  # a leaked long poll answers at once
    owner = make_tenant("org_owner", "prod")
    h = owner.headers

    def trigger(body: dict[str, Any]) -> str:
        return str(_ok(call_api("POST", "/api/v1/tasks/hello/trigger", json_body=body, headers=h))["id"])

    queued = trigger({"payload": {"x": 1}, "options": {"idempotencyKey": IDEMPOTENCY_KEY}})
    started = trigger({"payload": {"x": 2}})
    lease = _ok(call_api("POST", f"/api/v1/runs/{started}/start", json_body={}, headers=h))["leaseToken"]
    token = _ok(call_api("PUT", f"/realtime/v1/streams/{queued}/out", headers=h))["token"]
    _ok(
        call_api(
            "POST", f"/realtime/v1/streams/{queued}/out/append", json_body={"n": 1}, headers=_bearer(token)
        )
    )
    batch = _ok(
        call_api(
            "POST", "/api/v3/batches", json_body={"runCount": 2, "idempotencyKey": IDEMPOTENCY_KEY}, headers=h
        )
    )["id"]
    body = {"externalId": EXTERNAL_ID, "type": "chat", "taskId": "agent"}
    session = _ok(call_api("POST", "/api/v1/sessions", json_body=body, headers=h))["id"]
    _ok(call_api("PUT", f"/api/v1/sessions/{session}/snapshot", json_body=SNAPSHOT, headers=h))
    for io in ("in", "out"):
        channel_token = _ok(call_api("PUT", f"/realtime/v1/sessions/{session}/{io}", headers=h))["token"]
        _ok(
            call_api(
                "POST",
                f"/realtime/v1/sessions/{session}/{io}/append",
                json_body={"io": io},
                headers=_bearer(channel_token),
            )
        )
    return Owned(owner, queued, started, lease, batch, session)


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def owner_view(call_api: Any, owned: Owned) -> dict[str, Any]:
    """Everything the owner can read of what it made (timestamps of reads excluded)."""
    h = owned.tenant.headers
    reads = {
        "queued": f"/api/v1/runs/{owned.queued_run}",
        "started": f"/api/v1/runs/{owned.started_run}",
        "batch": f"/api/v3/batches/{owned.batch}",
        "session": f"/api/v1/sessions/{owned.session}",
        "snapshot": f"/api/v1/sessions/{owned.session}/snapshot",
        "stream": f"/realtime/v1/streams/{owned.queued_run}/out/records",
        "in": f"/realtime/v1/sessions/{owned.session}/in/records",
        "out": f"/realtime/v1/sessions/{owned.session}/out/records",
        "list": "/api/v1/sessions",
    }
    view = {}
    for name, path in reads.items():
        res = call_api("GET", path, headers=h)
        view[name] = (res.status, res.json())
    return view


@dataclass(frozen=True)
class Caller:
    kind: str
    headers: dict[str, str]


def callers(call_api: Any, owned: Owned, route: tuple[str, str]) -> Iterator[Caller]:
    """The other tenants' credentials this route takes."""
    method, path = route
    security = OPENAPI["paths"][path][method.lower()].get("security") or [{"apiKey": []}]
    schemes = {name for requirement in security for name in requirement}
    for label, org, env in (
        ("other org, same env id", "org_other", "prod"),
        ("other env, same org", "org_owner", "staging"),
    ):
        other = make_tenant(org, env)
        if "apiKey" in schemes:
            yield Caller(f"{label}: API key", other.headers)
        if schemes & TOKEN_SCHEMES:
            own = _own_stream_token(call_api, other, path)
            yield Caller(f"{label}: its own stream's token", _bearer(own))
            address = _owner_address(owned, path)
            signed = mint_token(other.env, address, int(time.time()) + 60)
            yield Caller(f"{label}: token signed for it, naming the owner's stream", _bearer(signed))


def _own_stream_token(call_api: Any, other: Tenant, path: str) -> str:
    """A genuine token of the other tenant for a stream of its own of the route's kind."""
    if "/sessions/" in path:
        body = {"type": "chat", "taskId": "agent"}
        session = _ok(call_api("POST", "/api/v1/sessions", json_body=body, headers=other.headers))["id"]
        return str(
            _ok(call_api("PUT", f"/realtime/v1/sessions/{session}/out", headers=other.headers))["token"]
        )
    run = _ok(
        call_api("POST", "/api/v1/tasks/hello/trigger", json_body={"payload": 1}, headers=other.headers)
    )["id"]
    return str(_ok(call_api("PUT", f"/realtime/v1/streams/{run}/out", headers=other.headers))["token"])


def _owner_address(owned: Owned, path: str) -> StreamAddress:
    if "/sessions/" in path:
        return StreamAddress("session", owned.session, "out")
    return StreamAddress.run(owned.queued_run, "out")


def concrete(owned: Owned, route: tuple[str, str]) -> str:
    """The route's path naming the owner's resources."""
    path = route[1]
    lease_routes = re.search(r"/runs/\{runId\}/(complete|fail|heartbeat)$", path)
    values = {
        "runId": owned.started_run if lease_routes else owned.queued_run,
        "key": "out",
        "session": owned.session,
        "io": "out",
        "batchId": owned.batch,
        "taskId": "hello",
        "name": "emails",
        "file": "owner-packet.json",
        "target": "self",
    }
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


def body_for(owned: Owned, route: tuple[str, str]) -> tuple[bytes, dict[str, str]]:
    path = route[1]
    if path.endswith("/items"):
        return b'{"index": 0, "task": "hello", "payload": {"forged": true}}\n', NDJSON
    if re.search(r"/runs/\{runId\}/(complete|fail|heartbeat)$", path):
        # The worst case: the other tenant holds the owner's lease token.
        body: dict[str, Any] = {"leaseToken": owned.lease, "output": {"forged": True}}
        if path.endswith("/fail"):
            body = {"leaseToken": owned.lease, "error": {"code": "X", "message": "forged"}, "retry": False}
        elif path.endswith("/heartbeat"):
            body = {"leaseToken": owned.lease}
        return json.dumps(body).encode(), JSON
    return json.dumps(BODIES.get(route, {})).encode(), JSON


def is_collection(path: str) -> bool:
    """A route whose path names no resource of a tenant (a task id, a queue's name, a packet's
    path: names each tenant has its own of, not resources)."""
    return not set(re.findall(r"\{(\w+)\}", path)) - {"taskId", "name", "file"}


def print_matrix(matrix: list[tuple[str, str, int]]) -> None:
    """Routes down, credentials across (shown with ``pytest -s`` or on a failure)."""
    kinds = list(dict.fromkeys(kind for _, kind, _ in matrix))
    print("\nisolation matrix: " + "; ".join(f"[{i}] {kind}" for i, kind in enumerate(kinds)))
    cells: dict[str, dict[str, int]] = {}
    for route, kind, status in matrix:
        cells.setdefault(route, {})[kind] = status
    print(f"  {'route':<52} " + " ".join(f"{f'[{i}]':>4}" for i in range(len(kinds))))
    for route, row in cells.items():
        print(f"  {route:<52} " + " ".join(f"{row.get(kind, '-'):>4}" for kind in kinds))


def test_every_route_refuses_another_tenant_and_changes_nothing(owned: Owned, call_api: Any) -> None:
    before = owner_view(call_api, owned)
    matrix: list[tuple[str, str, int]] = []
    leaks = []
    for route in ROUTES:
        method, template = route
        path = concrete(owned, route)
        body, content_type = body_for(owned, route)
        for caller in callers(call_api, owned, route):
            res = call_api(
                method,
                path,
                body=body if method in ("POST", "PUT") else None,
                headers={**caller.headers, **content_type},
            )
            matrix.append((f"{method} {template}", caller.kind, res.status))
            if is_collection(template):
                if res.status >= 500 or any(i in res.body for i in owned.ids()):
                    leaks.append((method, template, caller.kind, res.status, res.body[:200]))
            elif res.status not in (401, 404):
                leaks.append((method, template, caller.kind, res.status, res.body[:200]))
    print_matrix(matrix)
    assert not leaks, "\n".join(map(str, leaks))
    assert owner_view(call_api, owned) == before
    assert len({r for r, _, _ in matrix}) == len(ROUTES)


def redis_commands(client: redis.Redis) -> dict[str, int]:
    """The commands Redis ran since the last reset of its statistics (the bookkeeping excluded)."""
    stats = client.info("commandstats")
    return {
        name: int(s["calls"])
        for name, s in stats.items()
        if not name.startswith(("cmdstat_info", "cmdstat_config"))
    }


@pytest.mark.parametrize(
    "route", ["/realtime/v1/streams/{run}/out/records", "/realtime/v1/sessions/{session}/out/records"]
)
def test_a_foreign_stream_reads_like_a_missing_one_without_touching_redis(
    owned: Owned, call_api: Any, redis_client: redis.Redis, route: str
) -> None:
    """The ownership check comes first and reads no Redis, so a foreign stream and a missing one
    run the same commands (none) and answer the same: nothing tells them apart, not even time."""
    other = make_tenant("org_other", "prod")
    answers = {}
    for name, run, session in (
        ("foreign", owned.queued_run, owned.session),
        ("missing", "run_" + "0" * 25, "session_" + "0" * 25),
    ):
        redis_client.config_resetstat()
        res = call_api("GET", route.format(run=run, session=session), headers=other.headers)
        answers[name] = (res.status, res.json().get("code"), redis_commands(redis_client))
    assert answers["foreign"] == answers["missing"]
    assert answers["foreign"][0] == 404 and answers["foreign"][2] == {}
