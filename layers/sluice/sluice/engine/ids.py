"""Run ids: ``run_`` and 25 lowercase base-36 characters (about 129 bits of randomness)."""

from __future__ import annotations

import hashlib
import secrets

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
_LENGTH = 25


def new_run_id() -> str:
    return "run_" + "".join(secrets.choice(_ALPHABET) for _ in range(_LENGTH))


def derived_run_id(*parts: str) -> str:
    """A run id that is a pure function of ``parts``, for callers that must never make two runs
    for the same logical item (a batch index, a buffered entry)."""
    digest = int.from_bytes(hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()[:17], "big")
    chars = []
    for _ in range(_LENGTH):
        digest, rem = divmod(digest, 36)
        chars.append(_ALPHABET[rem])
    return "run_" + "".join(chars)
