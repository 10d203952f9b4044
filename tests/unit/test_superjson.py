"""The Python SDK's superjson reviver, on packets the trigger.dev SDK's superjson wrote (each
``{"json", "meta"}`` below is what superjson 2 serialised for the value in the comment)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest

from sluice_client.superjson import revive

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def test_dates_maps_sets_bigints_and_special_numbers() -> None:
    # {at: new Date(0), m: new Map([["a", 1], ["b", new Set([1, 2])]]), s: new Set(["x"]), b: 10n,
    #  u: undefined, n: NaN, arr: [new Date(1)]}
    packet = {
        "json": {
            "at": "1970-01-01T00:00:00.000Z",
            "m": [["a", 1], ["b", [1, 2]]],
            "s": ["x"],
            "b": "10",
            "u": None,
            "n": "NaN",
            "arr": ["1970-01-01T00:00:00.001Z"],
        },
        "meta": {
            "values": {
                "at": ["Date"],
                "m": ["map", {"1.1": ["set"]}],
                "s": ["set"],
                "b": ["bigint"],
                "u": ["undefined"],
                "n": ["number"],
                "arr.0": ["Date"],
            }
        },
    }
    value = revive(packet["json"], packet["meta"])
    assert value["at"] == EPOCH
    assert value["m"] == {"a": 1, "b": {1, 2}}
    assert value["s"] == {"x"} and value["b"] == 10 and value["u"] is None
    assert math.isnan(value["n"])
    assert value["arr"] == [datetime(1970, 1, 1, 0, 0, 0, 1000, tzinfo=UTC)]


def test_a_typed_root_and_a_map_with_typed_keys_and_values() -> None:
    assert revive("1970-01-01T00:00:00.000Z", {"values": ["Date"]}) == EPOCH
    # new Map([[new Date(0), 1n]])
    meta = {"values": ["map", {"0.0": ["Date"], "0.1": ["bigint"]}]}
    value = revive([["1970-01-01T00:00:00.000Z", "1"]], meta)
    assert value == {EPOCH: 1}


def test_escaped_dots_in_keys() -> None:
    assert revive({"a.b": "7"}, {"values": {"a\\.b": ["bigint"]}}) == {"a.b": 7}


@pytest.mark.parametrize(
    ("value", "meta"),
    [
        (
            {"r": "/ab+/g", "e": {"name": "Error", "message": "boom"}},
            {"values": {"r": ["regexp"], "e": ["Error"]}},
        ),
        ({"x": {"a": 1}, "y": {"a": 1}}, {"referentialEqualities": {"x": ["y"]}}),
        ({"a": 1}, None),
        ({"a": 1}, {"values": {"missing.path": ["Date"]}}),
        ({"a": "not a date"}, {"values": {"a": ["Date"]}}),
    ],
)
def test_what_python_has_no_type_for_stays_as_its_json(value: Any, meta: Any) -> None:
    assert revive(value, meta) == value


def test_an_unhashable_set_stays_a_list() -> None:
    assert revive([[1], [2]], {"values": ["set"]}) == [[1], [2]]
