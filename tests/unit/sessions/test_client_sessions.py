"""``client.sessions`` and ``HttpSessionChannel`` against the real handlers (in-process, over an httpx
transport that calls them as devstack would): a ``ChatAgent`` runs against a real session."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from pydantic import JsonValue

from sluice.engine import store as run_store
from sluice_client import SessionInfo, Sluice
from sluice_client.chat import ChatAgent, ChatMessage, SessionRunPayload, recover
from sluice_client.transport import RetryOptions, Transport
from tests.unit.sessions.builders import text_chunks, texts, user
from tests.unit.sessions.server import SessionsApi


class Echo(ChatAgent):
    def run(self, messages: list[ChatMessage]) -> Iterator[JsonValue]:
        yield from text_chunks(f"re: {texts(messages)[-1][1]}")


@pytest.fixture
def client(sessions_api: SessionsApi) -> Iterator[Sluice]:
    def handle(request: httpx.Request) -> httpx.Response:
        path = request.url.raw_path.decode()
        res = sessions_api.call(request.method, path, body=request.content, headers=dict(request.headers))
        return httpx.Response(res.status, headers=res.headers, content=res.body.encode())

    http = httpx.Client(
        base_url="http://api.test",
        transport=httpx.MockTransport(handle),
        headers={"authorization": f"Bearer {sessions_api.tenant.api_key}"},
    )
    retry = RetryOptions(max_attempts=2, min_delay_s=0.01, randomize=False)
    with Sluice(
        "http://api.test", "unused", transport=Transport("http://api.test", "unused", retry=retry, http=http)
    ) as sdk:
        yield sdk


def test_create_get_list_close(client: Sluice) -> None:
    created = client.sessions.create("chat", "chat-agent", external_id="c1", tags=["t"])
    assert client.sessions.create("chat", "chat-agent", external_id="c1").isCached is True
    assert client.sessions.get("c1").id == created.id
    page = client.sessions.list(tag="t", limit=5)
    assert [s.id for s in page.data] == [created.id] and page.nextCursor is None
    assert client.sessions.close(created.id).status == "CLOSED"


def test_session_info_is_the_servers_session_and_reads_a_newer_servers_too(client: Sluice) -> None:
    created = client.sessions.create("chat", "chat-agent", trigger_config={"basePayload": {"model": "m"}})
    assert created.model_extra == {}, "every field the server answers is one SessionInfo declares"
    assert created.triggerConfig.basePayload == {"model": "m"} and created.isCached is False
    newer = {**created.model_dump(mode="json"), "priority": 3}
    newer["triggerConfig"] = {**newer["triggerConfig"], "machine": "large"}
    read = SessionInfo.model_validate(newer)
    assert read.model_extra == {"priority": 3} and read.triggerConfig == created.triggerConfig


def test_send_lands_a_message_once_per_id_and_mints_the_channel_once(client: Sluice) -> None:
    session = client.sessions.create("chat", "chat-agent")
    message = user("m1", "hello")
    first = client.sessions.send(session.id, message)
    assert client.sessions.send(session.id, message) == first, "a retried send lands once"
    client.sessions.send(session.id, "and again")
    records = client.sessions.records(session.id, "in")
    assert [r.data["message"]["id"] for r in records if isinstance(r.data, dict)][:1] == ["m1"]  # type: ignore[index]
    assert len(records) == 2
    assert client.streams.cache.mints == 1


def test_a_chat_agent_serves_a_real_session_and_a_continuation_recovers_it(
    client: Sluice, sessions_api: SessionsApi
) -> None:
    session = client.sessions.create("chat", "chat-agent")
    client.sessions.send(session.id, user("u1", "one"))
    client.sessions.send(session.id, user("u2", "two"))
    run = run_store.get_run_item(session.currentRunId or "")
    assert run is not None
    payload = SessionRunPayload.model_validate(run.payload)
    channel = client.sessions.channel(session.id)
    answered = Echo(channel, payload, run_id=run.id).serve()
    assert texts(answered) == [
        ("user", "one"),
        ("assistant", "re: one"),
        ("user", "two"),
        ("assistant", "re: two"),
    ]
    assert client.sessions.read_snapshot(session.id) is not None

    sessions_api.end_run(run.id)
    client.sessions.send(session.id, user("u3", "three"))
    continuation_run = client.sessions.get(session.id).currentRunId
    assert continuation_run not in (None, run.id)
    stored = run_store.get_run_item(continuation_run or "")
    assert stored is not None
    payload = SessionRunPayload.model_validate(stored.payload)
    assert payload.continuation and payload.previousRunId == run.id
    answered = Echo(client.sessions.channel(session.id), payload, run_id=stored.id).serve()
    assert texts(answered)[-2:] == [("user", "three"), ("assistant", "re: three")]
    assert texts(recover(channel).settled) == texts(answered)
