"""GET /api/v1/runs through the real handler: filters, newest first, cursors, tenant scope, and
that it is served by index Queries (never a Scan)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest

from sluice import aws, engine
from sluice.engine import TriggerBody
from tests.conftest import Tenant, make_tenant


def list_runs(api: Any, tenant: Tenant | None = None, **query: str) -> Any:
    path = "/api/v1/runs" + (f"?{urlencode(query)}" if query else "")
    return api.call("GET", path, headers=(tenant or api.tenant).headers)


def ids(answer: Any) -> list[str]:
    assert answer.status == 200, answer.body
    return [row["id"] for row in answer.json()["data"]]


def trigger(api: Any, task: str = "work", **options: Any) -> str:
    result = api.call(
        "POST", f"/api/v1/tasks/{task}/trigger", json_body={"options": options}, headers=api.tenant.headers
    )
    assert result.status == 200, result.body
    return str(result.json()["id"])


def every_page(api: Any, size: int, **query: str) -> list[list[str]]:
    pages, after = [], None
    while True:
        extra = {"page[after]": after} if after else {}
        body = list_runs(api, **query, **{"page[size]": str(size)}, **extra).json()
        pages.append([row["id"] for row in body["data"]])
        after = body["pagination"].get("next")
        if after is None:
            return pages


def test_runs_are_listed_newest_first_in_the_reference_shape(api: Any) -> None:
    first = trigger(api, tags=["a"], idempotencyKey="k1")
    second = trigger(api, "other")

    body = list_runs(api).json()

    assert [row["id"] for row in body["data"]] == [second, first]
    assert body["pagination"] == {}
    row = body["data"][1]
    assert (row["status"], row["taskIdentifier"], row["tags"]) == ("QUEUED", "work", ["a"])
    assert (row["isQueued"], row["isExecuting"], row["isCompleted"], row["isCancelled"]) == (
        True, False, False, False,
    )  # fmt: skip
    assert row["env"]["id"] == api.tenant.env.env_id
    assert "payload" not in row


def test_each_filter_selects_its_runs(api: Any) -> None:
    plain = trigger(api)
    tagged = trigger(api, tags=["vip", "x"])
    keyed = trigger(api, idempotencyKey="the-key")
    other_task = trigger(api, "emails", tags=["vip"])
    delayed = trigger(api, delay="1h")
    executing = trigger(api)
    api.start(executing)
    canceled = trigger(api)
    assert api.call("POST", f"/api/v2/runs/{canceled}/cancel", headers=api.tenant.headers).status == 200

    assert ids(list_runs(api, **{"filter[tag]": "vip"})) == [other_task, tagged]
    assert ids(list_runs(api, **{"filter[taskIdentifier]": "emails"})) == [other_task]
    assert set(ids(list_runs(api, **{"filter[taskIdentifier]": "work,emails"}))) == {
        plain, tagged, keyed, other_task, delayed, executing, canceled,
    }  # fmt: skip
    assert ids(list_runs(api, **{"filter[idempotencyKey]": "the-key"})) == [keyed]
    assert ids(list_runs(api, **{"filter[status]": "EXECUTING"})) == [executing]
    assert ids(list_runs(api, **{"filter[status]": "DELAYED,CANCELED"})) == [canceled, delayed]
    assert ids(list_runs(api, **{"filter[taskIdentifier]": "work", "filter[tag]": "vip"})) == [tagged]


def test_created_at_range(api: Any) -> None:
    before = trigger(api)
    lower = datetime.now(UTC)
    inside = trigger(api)
    upper = datetime.now(UTC)
    after = trigger(api)

    window = {"filter[createdAt][from]": lower.isoformat(), "filter[createdAt][to]": upper.isoformat()}
    assert ids(list_runs(api, **window)) == [inside]
    assert ids(list_runs(api, **{"filter[createdAt][from]": lower.isoformat()})) == [after, inside]
    assert ids(list_runs(api, **{"filter[createdAt][to]": upper.isoformat()})) == [inside, before]
    assert len(ids(list_runs(api, **{"filter[createdAt][period]": "1h"}))) == 3


def test_batch_items_are_listed_by_batch(api: Any) -> None:
    # As batch_runs creates a batch's items: engine.trigger with the batch and index.
    made = [engine.trigger(api.tenant.env, "work", TriggerBody(), batch=("batch_1", i)).id for i in range(2)]
    engine.trigger(api.tenant.env, "work", TriggerBody(), batch=("batch_2", 0))
    trigger(api)  # in no batch

    rows = list_runs(api, **{"filter[batch]": "batch_1"}).json()["data"]

    assert [row["id"] for row in rows] == made[::-1]
    assert {row["batchId"] for row in rows} == {"batch_1"}


def test_pages_cover_every_run_once_and_page_back(api: Any) -> None:
    made = [trigger(api) for _ in range(7)]

    pages = every_page(api, 3)

    assert pages == [made[::-1][0:3], made[::-1][3:6], made[::-1][6:7]]
    second = list_runs(api, **{"page[size]": "3", "page[after]": _next(api, 3)}).json()
    back = list_runs(api, **{"page[size]": "3", "page[before]": second["pagination"]["previous"]}).json()
    assert [row["id"] for row in back["data"]] == pages[0]
    assert "previous" not in back["pagination"]


def _next(api: Any, size: int) -> str:
    return str(list_runs(api, **{"page[size]": str(size)}).json()["pagination"]["next"])


def test_a_filtered_page_is_topped_up_to_its_size(api: Any) -> None:
    wanted = [trigger(api, tags=["t"]) if i % 3 == 0 else trigger(api) for i in range(9)]
    tagged = [r for i, r in enumerate(wanted) if i % 3 == 0][::-1]

    assert every_page(api, 2, **{"filter[tag]": "t"}) == [tagged[:2], tagged[2:]]


def test_pages_are_stable_under_concurrent_inserts(api: Any) -> None:
    existing = [trigger(api) for _ in range(12)][::-1]
    stop = threading.Event()
    inserted: list[str] = []

    def insert() -> None:
        while not stop.is_set():
            inserted.append(trigger(api))

    writer = threading.Thread(target=insert)
    writer.start()
    try:
        pages = every_page(api, 4)
    finally:
        stop.set()
        writer.join()

    seen = [run_id for page in pages for run_id in page]
    assert inserted, "runs were inserted while paging"
    assert [r for r in seen if r not in inserted] == existing, "every run once, in order"
    assert len(seen) == len(set(seen))


def test_the_list_is_scoped_to_the_tenant_pair(api: Any) -> None:
    mine = trigger(api)
    same_env_other_org = make_tenant("org_other", api.tenant.env.env_id)
    theirs = api.call("POST", "/api/v1/tasks/work/trigger", json_body={}, headers=same_env_other_org.headers)
    assert theirs.status == 200

    assert ids(list_runs(api)) == [mine]
    assert ids(list_runs(api, same_env_other_org)) == [theirs.json()["id"]]
    cursor_pages = list_runs(api, **{"page[size]": "1"})
    assert cursor_pages.json()["pagination"] == {}


def test_a_cursor_is_bound_to_its_tenant_and_filter(api: Any) -> None:
    for _ in range(3):
        trigger(api)
    cursor = _next(api, 1)
    other = make_tenant("org_other", api.tenant.env.env_id)

    for tenant, query in ((other, {}), (api.tenant, {"filter[taskIdentifier]": "work"})):
        answer = list_runs(api, tenant, **query, **{"page[after]": cursor})
        assert (answer.status, answer.json()["code"]) == (400, "invalid_cursor")


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"filter[status]": "RUNNING"}, "invalid_status"),
        ({"filter[createdAt][from]": "yesterday"}, "invalid_filter"),
        ({"filter[createdAt][to]": "0001-01-01T00:00:00+01:00"}, "invalid_filter"),
        ({"filter[createdAt][period]": "forever"}, "invalid_filter"),
        ({"page[size]": "0"}, "invalid_limit"),
        ({"page[size]": "101"}, "invalid_limit"),
        ({"page[size]": "²"}, "invalid_limit"),
        ({"page[after]": "not-a-cursor"}, "invalid_cursor"),
        ({"page[after]": "e30", "page[before]": "e30"}, "invalid_cursor"),
    ],
)
def test_bad_queries_are_400(api: Any, query: dict[str, str], code: str) -> None:
    answer = list_runs(api, **query)
    assert (answer.status, answer.json()["code"]) == (400, code)


def test_lists_query_indexes_and_never_scan(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for _ in range(3):
        trigger(api, tags=["t"])
    client = aws.dynamodb()
    calls: list[tuple[str, str | None]] = []
    real_query, real_scan = client.query, client.scan
    monkeypatch.setattr(
        client, "query", lambda **kw: calls.append(("query", kw.get("IndexName"))) or real_query(**kw)
    )
    monkeypatch.setattr(client, "scan", lambda **kw: calls.append(("scan", None)) or real_scan(**kw))

    list_runs(api, **{"filter[tag]": "t"})
    list_runs(api, **{"filter[taskIdentifier]": "work"})
    list_runs(api, **{"filter[idempotencyKey]": "nope", "filter[taskIdentifier]": "work"})

    assert calls == [("query", "RunsByTenant"), ("query", "RunsByTask"), ("query", "RunsByIdempotencyKey")]
