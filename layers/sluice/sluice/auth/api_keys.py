"""API keys -> environments: the read side of the API keys table.

Layout (one table, partition key ``pk``; ``sluice.auth.admin`` writes it and describes it whole):

- ``KEY#<sha256(key)>`` -> ``orgId``, ``envId``, ``envType``, ``createdAt``, and ``revokedAt``
  once revoked: one API key.
- ``ORG#<orgId>`` -> ``flags`` (JSON text): the organization's feature flags.
- ``ENV#<orgId>/<envId>``: one environment.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from cachetools import TTLCache

from sluice import aws
from sluice.config import get_settings
from sluice.errors import Unauthorized

KEY_PREFIX = "KEY#"
ORG_PREFIX = "ORG#"
ENV_PREFIX = "ENV#"


@dataclass(frozen=True)
class Environment:
    """What an API key grants: one environment of one organization."""

    org_id: str
    env_id: str
    env_type: str = "DEVELOPMENT"
    org_flags: dict[str, Any] = field(default_factory=dict)

    @property
    def tenant(self) -> str:
        """This environment's tenant as one string: see :func:`tenant_key`."""
        return tenant_key(self.org_id, self.env_id)


def tenant_key(org_id: str, env_id: str) -> str:
    """One string per tenant, the pair (organization, environment), for keys and index values.

    Environment ids are names an operator chooses, so two organizations may both have ``prod``:
    anything scoped by environment is scoped by this pair. Ids never contain ``/`` (checked where
    organizations and environments are created), so the joined form is unambiguous.
    """
    return f"{org_id}/{env_id}"


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


def bearer_token(headers: dict[str, str] | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header (header names in any case)."""
    for name, value in (headers or {}).items():
        if name.lower() == "authorization" and value:
            scheme, _, token = value.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    raise Unauthorized("Missing or malformed Authorization header: expected 'Bearer <api key>'")


_cache_lock = threading.Lock()


@lru_cache(maxsize=1)
def _auth_cache() -> TTLCache[str, Environment]:
    return TTLCache(maxsize=4096, ttl=get_settings().auth_cache_ttl_s)


def clear_auth_cache() -> None:
    with _cache_lock:
        _auth_cache.cache_clear()


def authenticate(headers: dict[str, str] | None) -> Environment:
    """Resolve the request's API key to its environment.

    Raises:
        Unauthorized: no key, or a key that is not known.
        ServiceUnavailable: the key store cannot be read.
    """
    key_hash = hash_key(bearer_token(headers))
    caching = get_settings().auth_cache_ttl_s > 0
    if caching:
        with _cache_lock:
            cached = _auth_cache().get(key_hash)
        if cached is not None:
            return cached
    env = _load_environment(key_hash)
    if caching:
        with _cache_lock:
            _auth_cache()[key_hash] = env
    return env


def _load_environment(key_hash: str) -> Environment:
    table = get_settings().api_keys_table
    with aws.unavailable_as_503("API key store"):
        item = aws.dynamodb().get_item(TableName=table, Key={"pk": {"S": KEY_PREFIX + key_hash}}).get("Item")
        if item is None:
            raise Unauthorized("Invalid API key")
        if "revokedAt" in item and float(item["revokedAt"]["N"]) <= time.time():
            raise Unauthorized("API key revoked")
        org_id = item["orgId"]["S"]
        org = aws.dynamodb().get_item(TableName=table, Key={"pk": {"S": ORG_PREFIX + org_id}}).get("Item")
    flags = json.loads(org["flags"]["S"]) if org and "flags" in org else {}
    return Environment(
        org_id=org_id,
        env_id=item["envId"]["S"],
        env_type=item.get("envType", {}).get("S", "DEVELOPMENT"),
        org_flags=flags if isinstance(flags, dict) else {},
    )
