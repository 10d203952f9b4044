"""What a run that picks up a session with possible prior state (a continuation, or a retry after an
OOM) rebuilds: the settled conversation, the user messages still unanswered, and the reply that
the previous run was streaming when it died.

It departs from the reference platform on purpose where the reference loses a turn whose snapshot
write failed: a turn-complete record on ``out`` after the snapshot's cursor is newer than the
snapshot, so its ``in`` cursor wins over the snapshot's (the reference prefers the snapshot's and
answers that turn's message again), and the user messages of such turns are read back (from ``in``,
or from the ``sluice:user-message`` record a payload message gets on ``out``) and put before their
replies, so that ``out`` and ``in`` alone rebuild the conversation.
"""

from __future__ import annotations

from dataclasses import dataclass

from sluice_client.chat.channel import SessionChannel
from sluice_client.chat.history import merge_by_id, pending_tool_calls
from sluice_client.chat.replay import UserRecord, find_in_cursor, replay_in, replay_out
from sluice_client.chat.snapshot import load_snapshot
from sluice_wire.chat import ChatMessage, ChatSnapshot, ToolPart, entry_key


@dataclass(frozen=True)
class Recovery:
    snapshot: ChatSnapshot | None
    settled: list[ChatMessage]
    in_flight: list[UserRecord]
    partial: ChatMessage | None
    pending_tool_calls: list[ToolPart]
    # The ``in`` cursor of the last completed turn: in-flight users are the messages after it.
    in_cursor: str | None


@dataclass(frozen=True)
class RecoveryPlan:
    """What ``on_recovery_boot`` may return: a chain to start from and/or the user messages to
    answer as turns (``[]``: answer none). None keeps the default for that half."""

    chain: list[ChatMessage] | None = None
    recovered_turns: list[ChatMessage] | None = None


def recover(channel: SessionChannel, payload_message: ChatMessage | None = None) -> Recovery:
    """Rebuild the session's state. ``payload_message`` is the message of the run's payload on a
    retried attempt: it counts as the first in-flight user unless a completed turn already holds it,
    and a copy of it on ``in`` is not counted twice."""
    snapshot = load_snapshot(channel)
    out_records = channel.read("out", snapshot.lastOutEventId if snapshot else None)
    out = replay_out(out_records)
    since_snapshot = snapshot.lastInEventId if snapshot else None
    users = replay_in(channel.read("in", since_snapshot))

    replayed: list[ChatMessage] = []
    for turn in out.turns:
        if turn.in_cursor is not None:
            limit = entry_key(turn.in_cursor)
            answered = [user for user in users if user.record_id and entry_key(user.record_id) <= limit]
            users = users[len(answered) :]
            replayed += [user.message for user in answered]
        replayed += turn.messages
    replayed += out.open_messages
    settled = merge_by_id(snapshot.messages if snapshot else [], replayed)

    users = [UserRecord(None, message) for message in out.open_users] + users
    if payload_message is not None:
        users = [user for user in users if user.message.id != payload_message.id]
        if all(message.id != payload_message.id for message in settled):
            users.insert(0, UserRecord(None, payload_message))
    return Recovery(
        snapshot=snapshot,
        settled=settled,
        in_flight=users,
        partial=out.partial,
        pending_tool_calls=pending_tool_calls([out.raw_partial] if out.raw_partial else []),
        in_cursor=find_in_cursor(out_records) or since_snapshot,
    )


def default_plan(recovery: Recovery) -> tuple[list[ChatMessage], list[UserRecord]]:
    """(chain, turns). With a partial reply and at least one in-flight user, that reply was the
    answer to the first of them: both join the chain and the rest are answered as turns. Otherwise
    the chain is what settled and every in-flight user is answered as a turn."""
    if recovery.partial is not None and recovery.in_flight:
        first, *rest = recovery.in_flight
        return [*recovery.settled, first.message, recovery.partial], rest
    return list(recovery.settled), list(recovery.in_flight)


def apply_plan(recovery: Recovery, plan: RecoveryPlan) -> tuple[list[ChatMessage], list[UserRecord]]:
    """The default with whatever half the hook's plan replaced. A recovered turn that is one of the
    in-flight users keeps its ``in`` entry, so answering it advances the cursor past it."""
    chain, turns = default_plan(recovery)
    if plan.chain is not None:
        chain = list(plan.chain)
    if plan.recovered_turns is not None:
        entries = {user.message.id: user.record_id for user in recovery.in_flight}
        turns = [UserRecord(entries.get(message.id), message) for message in plan.recovered_turns]
    return chain, turns


def consumed_cursor(recovery: Recovery, turns: list[UserRecord]) -> str | None:
    """The ``in`` cursor once recovery is committed: past every in-flight user before the first
    one still to be answered (those joined the chain or were dropped by the hook)."""
    waiting = {user.message.id for user in turns}
    cursor = recovery.in_cursor
    for user in recovery.in_flight:
        if user.message.id in waiting:
            break
        cursor = user.record_id or cursor
    return cursor
