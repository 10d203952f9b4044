"""``recover`` and the default chain, on an in-memory session written the way an agent writes it."""

from __future__ import annotations

from sluice_client.chat import InMemorySessionChannel, Recovery, default_plan, recover, save_snapshot
from tests.unit.sessions.builders import assistant, reply, text_chunks, texts, turn_complete, user, write_out


def cut_off(message_id: str, text: str) -> list[dict[str, object]]:
    return [{"type": "start", "messageId": message_id}, *text_chunks(text)]


def two_turns_then_a_cut_off_reply() -> tuple[InMemorySessionChannel, list[str]]:
    """u1 -> a1, u2 -> a2 committed; u3 answered halfway; u4 and u5 sent meanwhile."""
    channel = InMemorySessionChannel()
    in_ids = [channel.send(user("u1", "one"))]
    write_out(channel, [*reply("a1", "first answer"), turn_complete(in_ids[0])])
    in_ids.append(channel.send(user("u2", "two")))
    write_out(channel, [*reply("a2", "second answer"), turn_complete(in_ids[1])])
    in_ids.append(channel.send(user("u3", "three")))
    write_out(channel, cut_off("a3", "third ans"))
    in_ids += [channel.send(user("u4", "four")), channel.send(user("u5", "five"))]
    return channel, in_ids


def test_without_a_snapshot_out_and_in_rebuild_the_committed_turns_in_order() -> None:
    channel, in_ids = two_turns_then_a_cut_off_reply()
    recovery = recover(channel)
    assert recovery.snapshot is None
    assert texts(recovery.settled) == [
        ("user", "one"),
        ("assistant", "first answer"),
        ("user", "two"),
        ("assistant", "second answer"),
    ]
    assert [(u.record_id, u.message.id) for u in recovery.in_flight] == [
        (in_ids[2], "u3"),
        (in_ids[3], "u4"),
        (in_ids[4], "u5"),
    ]
    assert recovery.partial is not None and texts([recovery.partial]) == [("assistant", "third ans")]
    assert recovery.in_cursor == in_ids[1]


def test_the_snapshot_seeds_the_settled_messages_and_both_replays_start_at_its_cursors() -> None:
    channel = InMemorySessionChannel()
    old_in = channel.send(user("old", "before the snapshot"))
    old_out = write_out(channel, [*reply("a-old", "old answer"), turn_complete(old_in)])
    save_snapshot(channel, [user("u0", "from snapshot"), assistant("a0", "snapshot answer")], old_out, old_in)
    u1 = channel.send(user("u1", "after"))
    write_out(channel, cut_off("a1", "partial"))

    recovery = recover(channel)
    assert texts(recovery.settled) == [("user", "from snapshot"), ("assistant", "snapshot answer")]
    assert [u.message.id for u in recovery.in_flight] == ["u1"], (
        "records before the snapshot's cursor stay unread"
    )
    assert recovery.in_cursor == old_in
    assert recovery.in_flight[0].record_id == u1


def test_a_turn_complete_newer_than_the_snapshot_wins_over_the_snapshots_cursor() -> None:
    """The snapshot write after turn 2 failed: turn 2 is still settled, and u2 is not in flight."""
    channel = InMemorySessionChannel()
    u1 = channel.send(user("u1", "one"))
    out1 = write_out(channel, [*reply("a1", "first"), turn_complete(u1)])
    save_snapshot(channel, [user("u1", "one"), assistant("a1", "first")], out1, u1)
    u2 = channel.send(user("u2", "two"))
    write_out(channel, [*reply("a2", "second"), turn_complete(u2)])

    recovery = recover(channel)
    assert texts(recovery.settled) == [
        ("user", "one"),
        ("assistant", "first"),
        ("user", "two"),
        ("assistant", "second"),
    ]
    assert recovery.in_flight == [] and recovery.in_cursor == u2


def test_replayed_messages_replace_snapshot_messages_with_the_same_id() -> None:
    channel = InMemorySessionChannel()
    save_snapshot(channel, [user("u1", "one"), assistant("a1", "stale")], None, None)
    write_out(channel, [*reply("a1", "fresh"), turn_complete(None)])
    assert texts(recover(channel).settled) == [("user", "one"), ("assistant", "fresh")]


def test_smart_default_splices_the_partial_after_the_first_in_flight_user_and_dispatches_the_rest() -> None:
    channel, _ = two_turns_then_a_cut_off_reply()
    chain, turns = default_plan(recover(channel))
    assert texts(chain)[-2:] == [("user", "three"), ("assistant", "third ans")]
    assert chain[-1].metadata == {"aborted": True}
    assert [u.message.id for u in turns] == ["u4", "u5"]


def test_without_a_partial_every_in_flight_user_is_dispatched_and_the_chain_is_what_settled() -> None:
    channel = InMemorySessionChannel()
    u1 = channel.send(user("u1"))
    write_out(channel, [*reply("a1", "answer"), turn_complete(u1)])
    channel.send(user("u2"))
    channel.send(user("u3"))
    recovery = recover(channel)
    chain, turns = default_plan(recovery)
    assert [m.id for m in chain] == ["u1", "a1"]
    assert [u.message.id for u in turns] == ["u2", "u3"]


def test_a_partial_without_in_flight_users_stays_out_of_the_default_chain() -> None:
    channel = InMemorySessionChannel()
    write_out(channel, cut_off("a1", "orphan"))
    recovery = recover(channel)
    assert recovery.partial is not None
    assert default_plan(recovery) == ([], [])


def test_pending_tool_calls_come_from_the_raw_partial() -> None:
    channel = InMemorySessionChannel()
    channel.send(user("u1"))
    write_out(
        channel,
        [
            {"type": "start", "messageId": "a1"},
            {"type": "tool-input-start", "toolCallId": "c1", "toolName": "search"},
            {"type": "tool-input-available", "toolCallId": "c1", "toolName": "search", "input": {"q": "x"}},
        ],
    )
    recovery: Recovery = recover(channel)
    assert [(c.toolCallId, c.input) for c in recovery.pending_tool_calls] == [("c1", {"q": "x"})]
    assert recovery.partial is not None and recovery.partial.tool_parts() == []


def test_on_a_retried_attempt_the_payload_message_is_the_first_in_flight_user_and_not_counted_twice() -> None:
    channel = InMemorySessionChannel()
    first = user("u1", "from the payload")
    channel.send(first)
    channel.send(user("u2"))
    write_out(channel, cut_off("a1", "half"))
    recovery = recover(channel, payload_message=first)
    assert [(u.record_id, u.message.id) for u in recovery.in_flight] == [(None, "u1"), ("2-0", "u2")]


def test_a_payload_message_that_a_committed_turn_holds_is_not_in_flight() -> None:
    channel = InMemorySessionChannel()
    first = user("u1", "from the payload")
    out = write_out(channel, [*reply("a1", "answered"), turn_complete(None)])
    save_snapshot(channel, [first, assistant("a1", "answered")], out, None)
    assert recover(channel, payload_message=first).in_flight == []
