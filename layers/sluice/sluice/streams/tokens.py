"""Stream write tokens: an HMAC over (organization, environment, stream address, expiry, and the
run attempt when the writer proved it holds the attempt's lease).

Checked with the secret alone, never a database read, so an append costs one Redis call. The
secret comes from Secrets Manager through Powertools parameters, cached per process.

A token is ``st1.<claims>.<signature>``, both parts base64url: the claims are JSON, the signature
is HMAC-SHA256 over ``st1.<claims>``. Hand-written rather than a JWT library because the token
has one algorithm, one issuer and one audience; a JWT's header negotiation is what we would have
to lock down.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Collection
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

from sluice import aws
from sluice.auth import Environment, tenant_key
from sluice.config import get_settings
from sluice.errors import ServiceUnavailable
from sluice.streams.errors import InvalidStreamToken
from sluice.streams.models import StreamAddress

PREFIX = "st1"


@dataclass(frozen=True)
class TokenClaims:
    org_id: str
    env_id: str
    address: StreamAddress
    expires_at: int
    # The run attempt the token writes for (0: none): the stream's fence refuses older attempts.
    attempt: int = 0

    @property
    def tenant(self) -> str:
        return tenant_key(self.org_id, self.env_id)


@lru_cache(maxsize=4)
def _provider(client: Any) -> SecretsProvider:
    return SecretsProvider(boto3_client=client)


def signing_secret() -> bytes:
    """The secret that signs tokens (cached for SLUICE_STREAM_TOKEN_SECRET_CACHE_S).

    Raises:
        ServiceUnavailable: Secrets Manager cannot be read.
    """
    settings = get_settings()
    with aws.unavailable_as_503("stream token secret"):
        try:
            value = _provider(aws.client("secretsmanager")).get(
                settings.stream_token_secret_id, max_age=settings.stream_token_secret_cache_s
            )
        except GetParameterError as exc:
            # Powertools wraps the SDK's error (raising inside its ``except``): judge that one.
            if isinstance(exc.__context__, aws.AWS_ERRORS):
                raise exc.__context__ from exc
            raise
    text = value.decode() if isinstance(value, bytes) else str(value)
    if not text:
        raise ServiceUnavailable("The stream token secret is empty")
    return text.encode("utf-8")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: bytes, message: str) -> str:
    return _b64(hmac.new(secret, message.encode("ascii"), hashlib.sha256).digest())


def mint_token(
    env: Environment,
    address: StreamAddress,
    expires_at: int,
    secret: bytes | None = None,
    *,
    attempt: int = 0,
) -> str:
    """A token for ``address`` that carries both halves of ``env``'s tenant (and ``attempt``, when
    not 0: the run attempt it writes for)."""
    claims: dict[str, Any] = {
        "org": env.org_id,
        "env": env.env_id,
        "s": address.scope,
        "o": address.owner,
        "k": address.key,
        "exp": expires_at,
    }
    if attempt:
        claims["att"] = attempt
    body = f"{PREFIX}.{_b64(json.dumps(claims, separators=(',', ':')).encode())}"
    return f"{body}.{_sign(secret or signing_secret(), body)}"


def is_stream_token(token: str) -> bool:
    return token.startswith(PREFIX + ".")


def verify_token(
    token: str, address: StreamAddress, now: float | None = None, *, or_for: Collection[StreamAddress] = ()
) -> TokenClaims:
    """The token's claims, if it is genuine, unexpired and made for ``address`` (or, when the
    caller accepts that, for one of ``or_for``).

    Raises:
        InvalidStreamToken: anything else (401).
    """
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        raise InvalidStreamToken("The stream token is malformed")
    body = f"{parts[0]}.{parts[1]}"
    if not hmac.compare_digest(_sign(signing_secret(), body), parts[2]):
        raise InvalidStreamToken("The stream token's signature does not match")
    try:
        raw = json.loads(_unb64(parts[1]))
        # A token without ``org`` was made before tokens named the organization: refused.
        claims = TokenClaims(
            org_id=str(raw["org"]),
            env_id=str(raw["env"]),
            address=StreamAddress(raw["s"], str(raw["o"]), str(raw["k"])),
            expires_at=int(raw["exp"]),
            attempt=int(raw.get("att", 0)),
        )
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:  # signed by us: cannot happen
        raise InvalidStreamToken("The stream token is malformed") from exc
    if claims.expires_at <= (time.time() if now is None else now):
        raise InvalidStreamToken("The stream token has expired; mint a new one", code="stream_token_expired")
    if claims.address != address and claims.address not in or_for:
        raise InvalidStreamToken("The stream token was made for another stream")
    return claims
