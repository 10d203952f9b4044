"""The console in headless Chromium: what a person sees of runs, streams and sessions."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from devstack.testing.launcher import DevStack

ORG, ENV = "org_console", "env_console"
pytestmark = pytest.mark.devstack


def signed_in(page: Any, stack: DevStack, key: str, hash_: str) -> float:
    """Open the console, sign in with ``key`` and go to ``hash_``; the page load's seconds."""
    started = time.perf_counter()
    page.goto(stack.api_url + "/console")
    page.fill("#token", key)
    page.click("#signin button[type=submit]")
    page.evaluate("h => { location.hash = h }", hash_)
    return started


def append(mint: dict[str, Any], chunk: Any) -> None:
    token = {"Authorization": f"Bearer {mint['token']}"}
    httpx.post(mint["appendUrl"], json=chunk, headers=token).raise_for_status()


def test_a_triggered_run_appears_in_the_list_and_its_page_shows_it(devstack: DevStack, page: Any) -> None:
    key = devstack.create_key(ORG, ENV)
    api = httpx.Client(base_url=devstack.api_url, headers={"Authorization": f"Bearer {key}"})
    signed_in(page, devstack, key, "#/runs")
    page.wait_for_selector("#runs")
    payload = {"payload": {"to": "ada@example.com"}}
    run_id = api.post("/api/v1/tasks/console-email/trigger", json=payload).json()["id"]
    row = page.wait_for_selector(f"tr[data-run='{run_id}']")  # the list polls: no reload
    assert "console-email" in row.inner_text()
    row.query_selector("a").click()
    page.wait_for_selector("h1 >> text=" + run_id)
    assert "ada@example.com" in page.inner_text("#view")


def test_a_run_page_renders_its_stream_chunk_by_chunk(devstack: DevStack, page: Any) -> None:
    key = devstack.create_key(ORG, ENV)
    api = httpx.Client(base_url=devstack.api_url, headers={"Authorization": f"Bearer {key}"})
    run_id = api.post("/api/v1/tasks/console-agent/trigger", json={"payload": {}}).json()["id"]
    mint = api.put(f"/realtime/v1/streams/{run_id}/out").json()
    append(mint, {"n": 0})
    started = signed_in(page, devstack, key, f"#/runs/{run_id}")
    page.wait_for_selector("[data-stream=out] div[data-id]")
    first_chunk_s = time.perf_counter() - started
    for n in (1, 2):
        append(mint, {"n": n})
        page.wait_for_function(
            "n => document.querySelectorAll('[data-stream=out] div[data-id]').length === n", arg=n + 1
        )
    shown = page.eval_on_selector_all("[data-stream=out] div[data-id]", "els => els.map(e => e.textContent)")
    assert shown == ['{"n":0}', '{"n":1}', '{"n":2}']
    print(f"\nconsole: page load to the run's first stream chunk {first_chunk_s * 1000:.0f} ms")


def test_a_session_shows_as_a_chat_with_a_cut_off_reply_marked(devstack: DevStack, page: Any) -> None:
    key = devstack.create_key(ORG, ENV)
    api = httpx.Client(base_url=devstack.api_url, headers={"Authorization": f"Bearer {key}"})
    session = api.post("/api/v1/sessions", json={"type": "chat.agent", "taskId": "agent"}).json()
    channel = {io: api.put(f"/realtime/v1/sessions/{session['id']}/{io}").json() for io in ("in", "out")}
    question = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "Weather in Paris?"}]}
    append(channel["in"], {"kind": "message", "trigger": "submit-message", "message": question})
    for chunk in (
        {"type": "start", "messageId": "m1"},
        {"type": "text-delta", "id": "t", "delta": "Sunny "},
        {"type": "start", "messageId": "m2"},  # the run crashed; its continuation replies again
        {"type": "text-delta", "id": "t", "delta": "Sunny, 21 C"},
        {"type": "finish"},
    ):
        append(channel["out"], chunk)
    signed_in(page, devstack, key, f"#/sessions/{session['id']}")
    page.wait_for_selector(".msg[data-role=assistant]")
    messages = page.eval_on_selector_all(
        ".msg", "els => els.map(e => [e.dataset.role, e.classList.contains('cut'), e.textContent])"
    )
    assert messages == [
        ["user", False, "Weather in Paris?"],
        ["assistant", True, "Sunny "],
        ["assistant", False, "Sunny, 21 C"],
    ]


def test_cancel_and_replay_from_a_run_page(devstack: DevStack, page: Any) -> None:
    key = devstack.create_key(ORG, ENV)
    api = httpx.Client(base_url=devstack.api_url, headers={"Authorization": f"Bearer {key}"})
    run_id = api.post("/api/v1/tasks/console-later/trigger", json={"payload": {"n": 7}}).json()["id"]
    signed_in(page, devstack, key, f"#/runs/{run_id}")
    page.click("#cancel")
    page.wait_for_selector("h1 [data-status=CANCELED]")
    assert api.get(f"/api/v1/runs/{run_id}").json()["status"] == "CANCELED"
    page.click("#replay")
    page.wait_for_function("id => !location.hash.includes(id)", arg=run_id)
    replayed = page.evaluate("decodeURIComponent(location.hash.slice('#/runs/'.length))")
    assert api.get(f"/api/v1/runs/{replayed}").json()["payload"] == {"n": 7}


def test_a_refused_credential_returns_to_sign_in(devstack: DevStack, page: Any) -> None:
    signed_in(page, devstack, "sk_dev_not_a_key", "#/sessions")
    page.wait_for_selector("#signin:not([hidden])")
    assert "refused" in page.inner_text("#status")
