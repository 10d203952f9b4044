"""The sessions package's errors."""

from __future__ import annotations

from sluice.errors import Conflict, Forbidden


class MalformedSegment(Exception):
    """An ``out`` segment that cannot be reduced to a message (a chunk that does not parse, or one
    that refers to a part the segment never started). Recovery skips the segment; a live turn
    whose ``run`` yields such a chunk fails like any other exception in ``run``."""


class SessionClosed(Conflict):
    """The session was closed: its channels take no more mints or appends."""

    code = "session_closed"


class SecretKeyRequired(Forbidden):
    """Only a secret API key may write a session's ``out`` channel (what the agent says)."""

    code = "secret_key_required"
