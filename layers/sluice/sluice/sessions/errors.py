"""The sessions package's errors."""

from __future__ import annotations

from sluice.errors import Conflict, Forbidden


class SessionClosed(Conflict):
    """The session was closed: its channels take no more mints or appends."""

    code = "session_closed"


class SecretKeyRequired(Forbidden):
    """Only a secret API key may write a session's ``out`` channel (what the agent says)."""

    code = "secret_key_required"
