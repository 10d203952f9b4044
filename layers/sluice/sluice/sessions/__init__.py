"""Durable chat sessions, worker side: the wire format of a session's ``in`` and ``out`` channels,
the conversation recovery a continuation run performs (DESIGN.md section 7, spec section 4.3), and
the ``ChatAgent`` that streams replies and commits each turn so that recovery always has a state.

- ``models``: the wire format (read its docstring first); ``snapshot``: the tolerant snapshot.
- ``assemble``: chunks -> message; ``replay``: the channels after a cursor; ``recovery``: the chain.
- ``history``: pending / resolved / new tool results; ``channel``: the port to a session.
"""

from sluice.sessions.agent import ChatAgent
from sluice.sessions.assemble import MessageAssembler, cleanup_aborted_parts
from sluice.sessions.channel import InMemorySessionChannel, Io, SessionChannel
from sluice.sessions.errors import MalformedSegment
from sluice.sessions.history import merge_by_id, new_tool_results, pending_tool_calls, resolved_tool_calls
from sluice.sessions.models import (
    ChannelRecord,
    ChatMessage,
    ChatSnapshot,
    InMessage,
    SessionRunPayload,
    TextPart,
    ToolPart,
    TurnCompleteRecord,
)
from sluice.sessions.recovery import Recovery, RecoveryPlan, default_plan, recover
from sluice.sessions.replay import (
    OutReplay,
    StopRequest,
    UserRecord,
    find_in_cursor,
    read_in,
    replay_in,
    replay_out,
)
from sluice.sessions.snapshot import load_snapshot, parse_snapshot, save_snapshot

__all__ = [
    "ChannelRecord",
    "ChatAgent",
    "ChatMessage",
    "ChatSnapshot",
    "InMemorySessionChannel",
    "InMessage",
    "Io",
    "MalformedSegment",
    "MessageAssembler",
    "OutReplay",
    "Recovery",
    "RecoveryPlan",
    "SessionChannel",
    "SessionRunPayload",
    "StopRequest",
    "TextPart",
    "ToolPart",
    "TurnCompleteRecord",
    "UserRecord",
    "cleanup_aborted_parts",
    "default_plan",
    "find_in_cursor",
    "load_snapshot",
    "merge_by_id",
    "new_tool_results",
    "parse_snapshot",
    "pending_tool_calls",
    "read_in",
    "recover",
    "replay_in",
    "replay_out",
    "resolved_tool_calls",
    "save_snapshot",
]
