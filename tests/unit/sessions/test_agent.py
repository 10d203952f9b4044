"""ChatAgent over the in-memory session: turns are committed, and a run that is cancelled or fails
mid-reply leaves a session that the next run rebuilds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import JsonValue

from sluice_client.chat import (
    ChannelRecord,
    ChatAgent,
    ChatMessage,
    InMemorySessionChannel,
    Io,
    MalformedSegment,
    Recovery,
    RecoveryPlan,
    SessionRunPayload,
    parse_snapshot,
    recover,
)
from tests.unit.sessions.builders import assistant, text_chunks, texts, user


class Crash(Exception):
    pass


class ScriptedAgent(ChatAgent):
    """Answers "<question>" with "re: <question>", word by word; records what it saw and when."""

    def __init__(self, channel: InMemorySessionChannel, payload: SessionRunPayload, **options: Any) -> None:
        self.fail_on = options.pop("fail_on", None)  # (question, exception): raised mid-reply
        self.plan = options.pop("plan", None)
        super().__init__(channel, payload, run_id=options.pop("run_id", "run_1"), **options)
        self.calls: list[tuple[str, Any]] = []

    def on_boot(self, *, continuation: bool, previous_run_id: str | None) -> None:
        self.calls.append(("boot", (continuation, previous_run_id)))

    def on_recovery_boot(self, recovery: Recovery) -> RecoveryPlan | None:
        self.calls.append(("recovery", recovery))
        if isinstance(self.plan, Exception):
            raise self.plan
        return self.plan  # type: ignore[no-any-return]

    def run(self, messages: list[ChatMessage]) -> Iterator[JsonValue]:
        question = texts(messages)[-1][1]
        self.calls.append(("run", texts(messages)))
        chunks: list[JsonValue] = list(text_chunks(f"re: {question}"))
        for index, chunk in enumerate(chunks):
            if self.fail_on and self.fail_on[0] == question and index == 2:
                raise self.fail_on[1]
            yield chunk

    def on_turn_complete(self, *, messages: list[ChatMessage], response: ChatMessage) -> None:
        self.calls.append(("turn_complete", response.id))

    def answered(self) -> list[str]:
        return [seen[-1][1] for name, seen in self.calls if name == "run"]

    def recoveries(self) -> list[Recovery]:
        return [recovery for name, recovery in self.calls if name == "recovery"]


def first_run(channel: InMemorySessionChannel, text: str, **options: Any) -> ScriptedAgent:
    payload = SessionRunPayload(sessionId="session_1", message=user("u1", text))
    return ScriptedAgent(channel, payload, **options)


def continuation(channel: InMemorySessionChannel, **options: Any) -> ScriptedAgent:
    payload = SessionRunPayload(sessionId="session_1", continuation=True, previousRunId="run_1")
    return ScriptedAgent(channel, payload, **{"run_id": "run_2", **options})


def out_types(channel: InMemorySessionChannel) -> list[Any]:
    return [record.data.get("type") for record in channel.records("out") if isinstance(record.data, dict)]


# The conversation after cancelled_mid_reply() and one continuation: u2 keeps the cut-off reply.
RECOVERED = [
    ("user", "one"),
    ("assistant", "re: one"),
    ("user", "two"),
    ("assistant", "re: "),
    ("user", "three"),
    ("assistant", "re: three"),
]


def cancelled_mid_reply(exception: BaseException) -> InMemorySessionChannel:
    """One run answers u1, then dies halfway through its reply to u2; u3 waits on ``in``."""
    channel = InMemorySessionChannel()
    channel.send(user("u2", "two"))
    channel.send(user("u3", "three"))
    with pytest.raises(type(exception)):
        first_run(channel, "one", fail_on=("two", exception)).serve()
    return channel


def test_each_turn_streams_between_start_and_finish_then_commits_with_the_in_cursor() -> None:
    channel = InMemorySessionChannel()
    u2 = channel.send(user("u2", "two"))
    agent = first_run(channel, "one")
    conversation = agent.serve()

    assert texts(conversation) == [
        ("user", "one"),
        ("assistant", "re: one"),
        ("user", "two"),
        ("assistant", "re: two"),
    ]
    assert out_types(channel).count("sluice:turn-complete") == 2
    last = channel.records("out")[-1]
    assert last.data == {"type": "sluice:turn-complete", "inEventId": u2}
    snapshot = parse_snapshot(channel.snapshot)
    assert snapshot is not None
    assert (snapshot.messages, snapshot.lastOutEventId, snapshot.lastInEventId) == (conversation, last.id, u2)
    assert [name for name, _ in agent.calls] == ["boot", "run", "turn_complete", "run", "turn_complete"]


def test_on_boot_fires_first_with_the_continuation_and_previous_run() -> None:
    channel = InMemorySessionChannel()
    fresh = first_run(channel, "one")
    fresh.serve()
    channel.send(user("u2", "two"))
    resumed = continuation(channel)
    resumed.serve()
    assert fresh.calls[0] == ("boot", (False, None))
    assert resumed.calls[0] == ("boot", (True, "run_1"))


@pytest.mark.parametrize(
    "exception", [Crash("model failed"), KeyboardInterrupt()], ids=["exception", "cancel"]
)
def test_a_reply_cut_off_by_an_exception_or_a_cancel_is_recovered_by_the_next_run(
    exception: BaseException,
) -> None:
    channel = cancelled_mid_reply(exception)
    stop = {"type": "abort"} if isinstance(exception, KeyboardInterrupt) else {"type": "error"}
    assert out_types(channel)[-1] == stop["type"] and out_types(channel)[-2] != "finish"

    agent = continuation(channel)
    conversation = agent.serve()
    (recovery,) = agent.recoveries()
    assert recovery.partial is not None and texts([recovery.partial]) == [("assistant", "re: ")]
    assert agent.answered() == ["three"], "u2 was answered by the partial, u3 exactly once"
    assert texts(conversation) == RECOVERED
    assert conversation[3].metadata == {"aborted": True}


def test_recovery_is_exact_from_out_and_in_alone_when_no_snapshot_was_ever_written() -> None:
    channel = cancelled_mid_reply(Crash())
    continuation(channel).serve()
    channel.snapshot = None
    channel.send(user("u4", "four"))
    agent = continuation(channel, run_id="run_3")
    conversation = agent.serve()
    assert agent.recoveries() == [] and agent.answered() == ["four"]
    assert [m.id for m in conversation if m.role == "user"] == ["u1", "u2", "u3", "u4"]
    assert texts(conversation) == [*RECOVERED, ("user", "four"), ("assistant", "re: four")]


def test_does_not_fire_the_recovery_hook_on_a_clean_continuation() -> None:
    channel = InMemorySessionChannel()
    first_run(channel, "one").serve()
    agent = continuation(channel)
    conversation = agent.serve()
    assert agent.recoveries() == [] and agent.answered() == []
    assert texts(conversation) == [("user", "one"), ("assistant", "re: one")]


def test_does_not_fire_the_recovery_hook_for_in_flight_users_without_a_partial_and_answers_each() -> None:
    channel = InMemorySessionChannel()
    first_run(channel, "one").serve()
    channel.send(user("u2", "two"))
    channel.send(user("u3", "three"))
    agent = continuation(channel)
    agent.serve()
    assert agent.recoveries() == []
    assert agent.answered() == ["two", "three"]


def test_the_recovery_hook_sees_settled_in_flight_partial_and_pending_tool_calls() -> None:
    channel = cancelled_mid_reply(Crash())
    agent = continuation(channel)
    agent.serve()
    (recovery,) = agent.recoveries()
    assert texts(recovery.settled) == [("user", "one"), ("assistant", "re: one")]
    assert [u.message.id for u in recovery.in_flight] == ["u2", "u3"]
    assert recovery.pending_tool_calls == []


def test_the_hooks_recovered_turns_empty_suppresses_answering_in_flight_users() -> None:
    channel = cancelled_mid_reply(Crash())
    agent = continuation(channel, plan=RecoveryPlan(recovered_turns=[]))
    conversation = agent.serve()
    assert agent.answered() == []
    assert [m.id for m in conversation if m.role == "user"] == ["u1", "u2"]
    channel.send(user("u4", "four"))
    later = continuation(channel, run_id="run_3")
    later.serve()
    assert later.answered() == ["four"], "the dropped u3 stays dropped"


def test_the_hooks_chain_seeds_the_conversation_the_next_turns_see() -> None:
    channel = cancelled_mid_reply(Crash())
    chain = [user("summary", "summary of it all"), assistant("ack", "ok")]
    agent = continuation(channel, plan=RecoveryPlan(chain=chain))
    conversation = agent.serve()
    assert agent.answered() == ["three"]
    assert [m.id for m in conversation[:3]] == ["summary", "ack", "u3"]


def test_a_hook_that_raises_falls_back_to_the_defaults_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    channel = cancelled_mid_reply(Crash())
    agent = continuation(channel, plan=RuntimeError("hook bug"))
    conversation = agent.serve()
    assert agent.answered() == ["three"]
    assert [m.id for m in conversation if m.role == "user"] == ["u1", "u2", "u3"]
    assert "sessions.recovery_hook_failed" in [r.message for r in caplog.records if r.levelname == "ERROR"]


def test_an_oom_retry_of_the_first_run_does_not_answer_the_payload_message_twice() -> None:
    channel = InMemorySessionChannel()
    with pytest.raises(Crash):
        first_run(channel, "one", fail_on=("one", Crash())).serve()
    retry = first_run(channel, "one", attempt=2)
    conversation = retry.serve()
    assert len(retry.recoveries()) == 1 and retry.answered() == []
    assert texts(conversation) == [("user", "one"), ("assistant", "re: ")]


def test_an_oom_retry_after_the_first_turn_committed_answers_only_what_is_in_flight() -> None:
    channel = InMemorySessionChannel()
    first_run(channel, "one").serve()
    channel.send(user("u2", "two"))
    retry = first_run(channel, "one", attempt=2)
    retry.serve()
    assert retry.answered() == ["two"]


@pytest.mark.parametrize(
    "bad",
    [
        {"type": "text-delta", "id": "never-started", "delta": "x"},
        {"type": "finish"},
        {"type": "sluice:turn-complete"},
        {"type": ["not", "a", "type"]},
        "not an object",
    ],
)
def test_a_chunk_run_may_not_write_fails_the_turn_and_never_reaches_out(bad: dict[str, Any]) -> None:
    class Bad(ScriptedAgent):
        def run(self, messages: list[ChatMessage]) -> Iterator[JsonValue]:
            yield bad

    channel = InMemorySessionChannel()
    with pytest.raises(MalformedSegment):
        Bad(channel, SessionRunPayload(sessionId="s", message=user("u1"))).serve()
    assert out_types(channel) == ["sluice:user-message", "start", "error"]


def test_a_failing_snapshot_store_never_fails_a_turn() -> None:
    class NoSnapshots(InMemorySessionChannel):
        def write_snapshot(self, body: str) -> None:
            raise ConnectionError("down")

    channel = NoSnapshots()
    conversation = first_run(channel, "one").serve()
    assert texts(conversation) == [("user", "one"), ("assistant", "re: one")]
    assert channel.snapshot is None


# --- a retried attempt of the same run -----------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        SessionRunPayload(sessionId="session_1"),
        SessionRunPayload(sessionId="session_1", continuation=True, previousRunId="run_0"),
    ],
    ids=["first-run", "continuation-run"],
)
def test_a_retried_attempt_boots_as_a_continuation_and_recovers_like_one(payload: SessionRunPayload) -> None:
    """The reaper retries a killed worker's run: attempt 2 has the same payload as attempt 1."""
    channel = InMemorySessionChannel()
    for message in (user("u1", "one"), user("u2", "two"), user("u3", "three")):
        channel.send(message)
    with pytest.raises(Crash):
        ScriptedAgent(channel, payload, fail_on=("two", Crash())).serve()

    retry = ScriptedAgent(channel, payload, attempt=2)
    conversation = retry.serve()
    assert retry.calls[0] == ("boot", (True, "run_1")), "a continuation of its own lost attempt"
    assert len(retry.recoveries()) == 1
    assert retry.answered() == ["three"], "u2 was answered by the partial, u3 exactly once"
    assert texts(conversation) == RECOVERED
    assert conversation[3].metadata == {"aborted": True}


# --- stop ------------------------------------------------------------------------------------------


class StoppableAgent(ScriptedAgent):
    """Streams "re: <question> and more and more" word by word; ``during`` runs once the third chunk
    ("re: <question>") is out, as the user acting while it streams; ``closed`` records the replies
    whose generator was closed."""

    stop_check_s = 0.0

    def __init__(self, channel: InMemorySessionChannel, payload: SessionRunPayload, **options: Any) -> None:
        self.during = options.pop("during", {})  # question -> callable
        super().__init__(channel, payload, **options)
        self.closed: list[str] = []

    def run(self, messages: list[ChatMessage]) -> Iterator[JsonValue]:
        question = texts(messages)[-1][1]
        self.calls.append(("run", texts(messages)))
        try:
            for index, chunk in enumerate(text_chunks(f"re: {question} and more and more")):
                yield chunk
                if index == 2 and question in self.during:
                    self.during[question]()
        finally:
            self.closed.append(question)


def stop(channel: InMemorySessionChannel) -> str:
    return channel.append("in", {"kind": "stop"})


def test_a_stop_on_in_ends_the_reply_cleanly_and_commits_it_as_far_as_it_went() -> None:
    channel = InMemorySessionChannel()
    u2 = channel.send(user("u2", "two"))
    agent = StoppableAgent(
        channel,
        SessionRunPayload(sessionId="s", message=user("u1", "one")),
        during={"two": lambda: stop(channel)},
    )
    conversation = agent.serve()

    assert texts(conversation) == [
        ("user", "one"),
        ("assistant", "re: one and more and more"),
        ("user", "two"),
        ("assistant", "re: two and "),
    ]
    assert conversation[-1].metadata == {"aborted": True}
    assert agent.closed == ["one", "two"], "the stopped generator was closed (its finally ran)"
    types = out_types(channel)
    last_reply = types[len(types) - 1 - types[::-1].index("start") :]
    assert last_reply == [
        "start",
        "text-start",
        "text-delta",
        "text-delta",
        "text-delta",
        "abort",
        "sluice:turn-complete",
    ]
    assert channel.records("out")[-1].data == {"type": "sluice:turn-complete", "inEventId": u2}
    assert [name for name, _ in agent.calls][-1] == "turn_complete"

    later = recover(channel)
    assert later.partial is None and later.in_flight == [], "the stopped turn is settled, not cut off"
    assert later.settled == conversation, "a replay of out and the snapshot agree with the live turn"


def test_after_a_stop_the_next_message_is_answered_with_the_stopped_reply_in_its_history() -> None:
    channel = InMemorySessionChannel()
    channel.send(user("u1", "one"))
    agent = StoppableAgent(
        channel,
        SessionRunPayload(sessionId="s"),
        during={"one": lambda: (stop(channel), channel.send(user("u2", "two")))},
    )
    conversation = agent.serve()
    assert agent.answered() == ["one", "two"], "the message sent with the stop is answered after it"
    assert texts(conversation)[1:] == [
        ("assistant", "re: one and "),
        ("user", "two"),
        ("assistant", "re: two and more and more"),
    ]
    assert out_types(channel).count("start") == 2 and out_types(channel).count("finish") == 1


def test_a_stop_while_no_reply_streams_is_ignored() -> None:
    channel = InMemorySessionChannel()
    agent = StoppableAgent(channel, SessionRunPayload(sessionId="s", message=user("u1", "one")))
    agent.serve()
    stop(channel)  # too late: the reply to "one" has finished
    channel.send(user("u2", "two"))
    assert agent.answer_new() == 1
    assert texts(agent.messages)[-1] == ("assistant", "re: two and more and more")
    assert "abort" not in out_types(channel)


def test_messages_that_arrive_while_a_reply_streams_are_answered_after_it_once_each() -> None:
    channel = InMemorySessionChannel()
    channel.send(user("u1", "one"))
    agent = StoppableAgent(
        channel, SessionRunPayload(sessionId="s"), during={"one": lambda: channel.send(user("u2", "two"))}
    )
    agent.serve()
    assert agent.answered() == ["one", "two"]
    assert recover(channel).in_flight == []


def test_a_stop_check_that_cannot_read_in_lets_the_reply_go_on(caplog: pytest.LogCaptureFixture) -> None:
    class InDown(InMemorySessionChannel):
        down = False

        def read(self, io: Io, after: str | None) -> list[ChannelRecord]:
            if io == "in" and self.down:
                raise ConnectionError("in is unreachable")
            return super().read(io, after)

    channel = InDown()

    def outage() -> None:
        channel.down = True

    agent = StoppableAgent(
        channel, SessionRunPayload(sessionId="s", message=user("u1", "one")), during={"one": outage}
    )
    with pytest.raises(ConnectionError):  # serve's read for new messages after the turn
        agent.serve()
    assert texts(agent.messages)[-1] == ("assistant", "re: one and more and more")
    assert out_types(channel)[-2:] == ["finish", "sluice:turn-complete"]
    assert "sessions.stop_check_failed" in [r.message for r in caplog.records]
