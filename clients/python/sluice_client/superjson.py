"""Revive a superjson payload in Python: ``revive(run["payload"], run.get("payloadMeta"))``.

The trigger.dev SDK sends objects as superjson: plain JSON plus ``meta.values``, a tree of the
paths whose values JSON cannot hold, each with its type. Sluice's routes show the JSON as
``payload`` and the meta as ``payloadMeta``; this turns them back into the Python values closest
to what the sender had:

    Date -> datetime (UTC)      map -> dict (list keys as tuples)   set -> set (a list if unhashable)
    bigint -> int               undefined -> None                   number -> nan, inf, -inf, -0.0

Anything else (regexp, Error, URL, classes and custom types) stays as its JSON. Shared
references (``meta.referentialEqualities``) come back as equal copies. Hand-written: no
maintained Python package reads superjson's meta; the format is small and documented by the
superjson project (paths joined by ``.``, ``\\.`` escaping a dot inside a key).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

_SPECIAL_NUMBERS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf, "-0": -0.0}
_UNESCAPED_DOT = re.compile(r"(?<!\\)\.")


def revive(value: Any, meta: Any) -> Any:
    """``value`` with the types ``meta`` (superjson's ``meta``) records applied; ``value`` when
    there is no meta or it is not superjson's."""
    tree = meta.get("values") if isinstance(meta, dict) else None
    if tree is None:
        return value
    if isinstance(tree, list):  # the root itself has a type: [type] or [type, children]
        return _apply_node(value, tree)
    if isinstance(tree, dict):
        return _apply_children(value, tree)
    return value


def _apply_node(value: Any, node: list[Any]) -> Any:
    if not node:
        return value
    if len(node) > 1 and isinstance(node[1], dict):
        value = _apply_children(value, node[1])  # children first: a map's values before the map
    return _untransform(value, node[0])


def _apply_children(value: Any, children: dict[str, Any]) -> Any:
    for path, node in children.items():
        if isinstance(node, list):
            value = _replace_at(value, _segments(path), partial(_apply_node, node=node))
    return value


def _segments(path: str) -> list[str]:
    return [part.replace("\\.", ".").replace("\\\\", "\\") for part in _UNESCAPED_DOT.split(path)]


def _replace_at(value: Any, path: list[str], change: Callable[[Any], Any]) -> Any:
    if not path:
        return change(value)
    head, rest = path[0], path[1:]
    if isinstance(value, list) and head.isdigit() and int(head) < len(value):
        index = int(head)
        value[index] = _replace_at(value[index], rest, change)
    elif isinstance(value, dict) and head in value:
        value[head] = _replace_at(value[head], rest, change)
    return value


def _untransform(value: Any, kind: Any) -> Any:
    if kind == "Date" and isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
        except ValueError:
            return value  # an Invalid Date
    if kind == "bigint" and isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return value
    if kind == "undefined":
        return None
    if kind == "number" and isinstance(value, str):
        return _SPECIAL_NUMBERS.get(value, value)
    if kind == "set" and isinstance(value, list):
        try:
            return set(value)
        except TypeError:
            return value
    if kind == "map" and isinstance(value, list):
        return {_hashable(pair[0]): pair[1] for pair in value if isinstance(pair, list) and len(pair) == 2}
    return value


def _hashable(key: Any) -> Any:
    if isinstance(key, list):
        return tuple(_hashable(item) for item in key)
    if isinstance(key, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in key.items()))
    return key
