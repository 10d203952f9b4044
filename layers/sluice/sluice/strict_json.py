"""JSON decoding that refuses what JSON cannot hold, so nothing is read back changed.

Python's ``json`` accepts ``NaN``, ``Infinity`` and numbers like ``1e400`` (which become ``inf``);
none of them survives a round trip through DynamoDB or another JSON parser, so a value holding
one would be stored and then read back as ``null`` or fail to read at all. Integers over
Python's 4300-digit conversion limit are refused too (``ValueError`` from ``int``), and so is half
of a UTF-16 surrogate pair on its own (``"\\ud800"``): JSON's grammar allows the escape, but the
character it makes has no UTF-8 form, so the value could not be stored at all.

Depth is the other thing a stored value must stay within (``MAX_DEPTH``).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from sluice.errors import BadRequest, Unprocessable

# How deep a client's value (a payload, metadata) may nest: containers inside containers, a
# scalar being 0. A run lives in DynamoDB as one JSON string that pydantic's JSON parser reads back,
# and that parser refuses documents nested over 200 levels; the run wraps the payload in one more
# level, the burst buffer's snapshot in two. 128 keeps every stored copy readable with room to
# spare, and no real payload comes near it.
MAX_DEPTH = 128


# Only an escape can make a lone surrogate (decoding UTF-8 refuses the raw bytes), so a document
# without one (nearly all) is never looked at twice.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class TooDeep(ValueError):
    """A document nested deeper than the decoder itself can go (about 1000 levels)."""


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
        TooDeep: nested too deep to decode at all (far over ``MAX_DEPTH``).
        ValueError: not UTF-8, not JSON, a number JSON cannot represent, or a lone surrogate
            (``UnicodeDecodeError`` and ``json.JSONDecodeError`` are both ``ValueError``).
    """
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
        if _SURROGATE_ESCAPE.search(text):
            # Encoding it as it will be stored is the check: it fails on exactly a lone surrogate.
            json.dumps(value, ensure_ascii=False).encode("utf-8")
    except RecursionError:
        raise TooDeep(f"the document nests deeper than {MAX_DEPTH} levels") from None
    except UnicodeEncodeError:
        raise ValueError("a string holds half of a UTF-16 surrogate pair (\\ud800-\\udfff) alone") from None
    return value


def depth(value: Any) -> int:
    """How many containers deep ``value`` nests (a scalar is 0). Iterative, so that a value nested
    past Python's recursion limit is measured rather than crashing the measurement."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        current, level = stack.pop()
        if isinstance(current, dict):
            children: Any = current.values()
        elif isinstance(current, list | tuple):
            children = current
        else:
            deepest = max(deepest, level)
            continue
        deepest = max(deepest, level + 1)
        stack.extend((child, level + 1) for child in children)
    return deepest


def parse(data: bytes, what: str, *, within_depth: bool = False) -> Any:
    """A client's JSON as the API refuses it; ``what`` names it in the message ("The request body").

    Raises:
        BadRequest: ``invalid_json`` (not UTF-8, not JSON, or a number JSON cannot hold).
        Unprocessable: ``payload_too_deep``: nested too deep to decode, or (``within_depth``) over
            ``MAX_DEPTH``, for a value stored as it is (a stream chunk).
    """
    try:
        value = loads(data)
        if within_depth and (levels := depth(value)) > MAX_DEPTH:
            raise TooDeep(f"the value nests {levels} levels deep; the limit is {MAX_DEPTH}")
    except TooDeep as exc:
        raise Unprocessable(f"{what} is not usable: {exc}", code="payload_too_deep") from exc
    except ValueError as exc:
        raise BadRequest(f"{what} is not valid JSON: {exc}", code="invalid_json") from exc
    return value
