"""A session's channels on the stream machinery: ``in`` (user -> agent) and ``out`` (agent -> user)
are streams addressed ``("session", session id, io)``, so tokens, part-id dedup, the Redis layout
and the SSE reader are the run streams' own (``sluice.streams``), not a copy.

What sessions add: the session must exist in the caller's environment and be open; only a secret
API key mints ``out``; a closed channel answers ``session_closed``; an append to ``in`` makes sure a
run is alive to read it (``runs.ensure_run``). A worker rebuilding the conversation reads the
records with the streams' drained read (``sluice.streams.drain``: it must not wait on a long poll).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from aws_lambda_powertools import Logger

from sluice.auth import Environment, authenticate
from sluice.engine import Run
from sluice.errors import Conflict, NotFound, SluiceError
from sluice.sessions import runs, table
from sluice.sessions.errors import SecretKeyRequired, SessionClosed
from sluice.sessions.records import Session
from sluice.sessions.service import CHANNELS, channel_address, get_session
from sluice.streams import (
    AppendAnswer,
    AppendResult,
    Credentials,
    Start,
    StreamClosed,
    StreamReader,
    get_store,
    parse_chunks,
)
from sluice.streams.runs import leased_attempt
from sluice.streams.service import issue_credentials, open_reader
from sluice.streams.tokens import TokenClaims, is_stream_token, verify_token

logger = Logger(service="sluice", child=True)

SECRET_KEY_PREFIX = "sk_"
# The ``out`` fence orders (run version, attempt) as one number: a run has at most 100 attempts.
ATTEMPTS_PER_RUN = 1000


def out_fence(run_version: int, attempt: int) -> int:
    return run_version * ATTEMPTS_PER_RUN + attempt


def channel_path(session_id: str, io: str) -> str:
    return f"/realtime/v1/sessions/{quote(session_id, safe='')}/{quote(io, safe='')}"


def mint(
    env: Environment, api_key: str, ref: str, io: str, *, api_base: str, lease_token: str | None = None
) -> Credentials:
    """Credentials to write (and read) one channel of an open session.

    ``lease_token`` (``out``, a worker's ``X-Lease-Token``): the token writes for the session's
    current run's attempt that holds it, and the channel's fence is raised to it (as a run
    stream's is: ``streams.service.mint``), ordered by run version then attempt, so a worker of an
    earlier attempt or an earlier (lost, canceled) run of the session can no longer write ``out``.

    Raises:
        NotFound: no such session in ``env``, or no such channel.
        SecretKeyRequired: ``out`` with a key that is not a secret key (403).
        SessionClosed: the session is closed (409).
        Conflict: ``stale_lease``: the lease is not the executing attempt of the session's run.
    """
    session = get_session(env, ref)
    address = channel_address(session.id, io)
    if io == "out" and not api_key.startswith(SECRET_KEY_PREFIX):
        raise SecretKeyRequired("Only a secret API key may write a session's out channel")
    if session.closed:
        raise SessionClosed(f"Session {session.id} is closed")
    fence = 0
    if lease_token is not None and io == "out":
        run_id = session.currentRunId
        attempt = leased_attempt(run_id, lease_token) if run_id else None
        if attempt is None:
            message = f"The lease token is not the executing attempt's of session {session.id}'s run"
            raise Conflict(message, code="stale_lease")
        fence = out_fence(session.currentRunVersion, attempt)
        get_store().raise_fence(address, fence)
    return issue_credentials(env, address, channel_path(session.id, io), api_base=api_base, attempt=fence)


def fence_session_out(run: Run) -> None:
    """A session's run whose attempt ended (retried, finished, canceled): its worker can no
    longer write the session's ``out`` (the run lifecycle's listeners call this)."""
    session_id = run.payload.get("sessionId") if isinstance(run.payload, dict) else None
    session = table.get_session_item(session_id) if isinstance(session_id, str) else None
    if session is None or session.currentRunId != run.id:
        return
    fence = out_fence(session.currentRunVersion, run.attempt + 1)
    get_store().raise_fence(channel_address(session.id, "out"), fence)


class ChannelAppendAnswer(AppendAnswer):
    runId: str | None  # ``in``: the session's live run after the append (None if starting one failed)


@dataclass(frozen=True)
class ChannelAppend:
    result: AppendResult
    run_id: str | None  # ``in``: the session's live run after the append

    def to_api(self) -> dict[str, Any]:
        return ChannelAppendAnswer(**self.result.to_api(), runId=self.run_id).model_dump()


def _session_of_token(claims: TokenClaims, session_id: str) -> Session:
    session = table.get_session_item(session_id)
    if session is None or (session.orgId, session.envId) != (claims.org_id, claims.env_id):
        raise NotFound(f"Session {session_id} not found", code="session_not_found")
    return session


def append(
    token: str, session_id: str, io: str, body: bytes, content_type: str, *, part_id: str | None = None
) -> ChannelAppend:
    """Append to a channel with a token its mint gave (its URLs name the session by id). An append
    to ``in`` then starts a continuation run if the session has no live run; that step is best
    effort: the message is kept either way, and the next append tries again.

    Raises:
        InvalidStreamToken: the token is not for this channel (401).
        BadRequest, ChunkTooLarge: the body (nothing appended).
        SessionClosed: the session is closed (409, nothing appended).
        ServiceUnavailable: Redis (or, for ``in``, DynamoDB) is down (nothing appended).
    """
    address = channel_address(session_id, io)
    claims = verify_token(token, address)
    chunks = parse_chunks(body, content_type, part_id)
    session = _session_of_token(claims, session_id) if io == "in" else None
    if session is not None and session.closed:
        raise SessionClosed(f"Session {session_id} is closed")
    try:
        result = get_store().append(address, claims.tenant, chunks, claims.attempt)
    except StreamClosed as exc:
        raise SessionClosed(f"Session {session_id} is closed") from exc
    run_id = None
    if session is not None:
        try:
            run_id = runs.ensure_run(session)
        except SluiceError as exc:
            logger.warning(
                "sessions.ensure_run_failed", extra={"sessionId": session_id, "error": exc.message}
            )
    return ChannelAppend(result, run_id)


def reader(bearer: str, ref: str, io: str, start: str | Start | None) -> StreamReader:
    """A reader of one channel: with an API key of the session's environment (the session named
    by id or externalId), or with a token of either channel of the session (named by id, as the
    mint's URLs do).

    A token of one channel reads both, so the ``in`` token is the session-scoped token a browser
    holds: it sends on ``in`` and follows ``out``, and writes nothing else. It grants no more than
    the key that minted it could read, and only for this one session.

    Raises:
        Unauthorized, InvalidStreamToken: neither authorises this channel.
        NotFound: no such session in the key's environment, or no such channel.
    """
    if is_stream_token(bearer):
        address = channel_address(ref, io)
        session_channels = [channel_address(ref, channel) for channel in CHANNELS]
        return open_reader(bearer, address, start, token_for=session_channels)
    env = authenticate({"authorization": f"Bearer {bearer}"})
    session = get_session(env, ref)
    # The key's environment was just checked against the session: nothing more for the reader to do.
    return open_reader(bearer, channel_address(session.id, io), start, check_owner=lambda _: None)
