"""API keys -> environments. Keys are stored only as SHA-256 hashes."""

from sluice.auth.admin import provision_key, set_org_flags
from sluice.auth.api_keys import (
    Environment,
    authenticate,
    bearer_token,
    clear_auth_cache,
    hash_key,
    tenant_key,
)
from sluice.auth.tenancy import owns

__all__ = [
    "Environment",
    "authenticate",
    "bearer_token",
    "clear_auth_cache",
    "hash_key",
    "owns",
    "provision_key",
    "set_org_flags",
    "tenant_key",
]
