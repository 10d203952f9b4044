"""Durable chat sessions, worker side: the wire format of a session's ``in`` and ``out`` channels,
the conversation recovery a continuation run performs (DESIGN.md section 7, spec section 4.3), and
the ``ChatAgent`` that streams replies and commits each turn so that recovery always has a state.

- ``models``: the wire format (read its docstring first); ``snapshot``: the tolerant snapshot.
- ``assemble``: chunks -> message; ``replay``: the channels after a cursor; ``recovery``: the chain.
- ``history``: pending / resolved / new tool results; ``channel``: the port to a session.
"""

from sluice_client.chat.agent import ChatAgent
from sluice_client.chat.assemble import MessageAssembler, cleanup_aborted_parts
from sluice_client.chat.channel import InMemorySessionChannel, Io, SessionChannel
from sluice_client.chat.errors import MalformedSegment
from sluice_client.chat.history import merge_by_id, new_tool_results, pending_tool_calls, resolved_tool_calls
from sluice_client.chat.recovery import Recovery, RecoveryPlan, default_plan, recover
from sluice_client.chat.replay import (
    OutReplay,
    StopRequest,
    UserRecord,
    find_in_cursor,
    read_in,
    replay_in,
    replay_out,
)
from sluice_client.chat.snapshot import load_snapshot, parse_snapshot, save_snapshot
from sluice_wire.chat import (
    ChannelRecord,
    ChatMessage,
    ChatSnapshot,
    InMessage,
    SessionRunPayload,
    TextPart,
    ToolPart,
    TurnCompleteRecord,
)

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
