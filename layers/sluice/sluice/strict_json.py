"""JSON decoding that refuses what JSON cannot hold, so nothing is read back changed.

Python's ``json`` accepts ``NaN``, ``Infinity`` and numbers like ``1e400`` (which become ``inf``);
none of them survives a round trip through DynamoDB or another JSON parser, so a value holding
one would be stored and then read back as ``null`` or fail to read at all. Integers over
Python's 4300-digit conversion limit are refused too (``ValueError`` from ``int``).
"""

from __future__ import annotations

import json
import math
from typing import Any


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def loads(data: bytes | str) -> Any:
    """Decode one JSON document from UTF-8 bytes or text.

    Raises:
        ValueError: not UTF-8, not JSON, or a number JSON cannot represent (``UnicodeDecodeError``
            and ``json.JSONDecodeError`` are both ``ValueError``).
    """
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
