"""Run ids: ``run_`` and 25 lowercase base-36 characters (about 129 bits of randomness)."""

from __future__ import annotations

import hashlib
import secrets

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
_LENGTH = 25


def _run_id(number: int) -> str:
    chars = []
    for _ in range(_LENGTH):
        number, rem = divmod(number, 36)
        chars.append(_ALPHABET[rem])
    return "run_" + "".join(chars)


def new_run_id() -> str:
    # One draw from the OS for the whole id: secrets.choice per character read urandom 25 times,
    # a fifth of a trigger's own CPU (bench/handler_cpu.py).
    return _run_id(secrets.randbelow(36**_LENGTH))


def derived_run_id(*parts: str) -> str:
    """A run id that is a pure function of ``parts``, for callers that must never make two runs
    for the same logical item (a batch index, a buffered entry)."""
    return _run_id(int.from_bytes(hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()[:17], "big"))
