"""The one ownership check: a resource belongs to a caller when both its organization and its
environment are the caller's (environment ids are operator-chosen names that two organizations
may share, so the environment alone proves nothing)."""

from __future__ import annotations

from sluice.auth.api_keys import Environment


def owns(env: Environment, org_id: str | None, env_id: str | None) -> bool:
    """Whether the resource stored with ``org_id``/``env_id`` is ``env``'s tenant's."""
    return org_id == env.org_id and env_id == env.env_id
