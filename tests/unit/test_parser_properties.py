"""Properties of the NDJSON and duration parsers, over inputs Hypothesis makes up."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.batches.ndjson import NdjsonParser, OversizedItem
from sluice.engine.durations import _UNITS, MAX_DURATION, parse_duration

MAX_ITEM = 200

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
items = st.builds(
    lambda index, value: {"index": index, "task": "t", "payload": value},
    st.integers(0, 10**6),
    json_values,
)


def parse(data: bytes, cuts: list[int]) -> list[Any]:
    parser = NdjsonParser(MAX_ITEM)
    out: list[Any] = []
    start = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        out += [p.value for p in parser.feed(data[start:cut])]
        start = cut
    out += [p.value for p in parser.finish()]
    return out


@settings(max_examples=300, deadline=None)
@given(
    st.lists(items, max_size=8),
    st.lists(st.integers(0, 4000), max_size=12),
    st.sampled_from([b"\n", b"\r\n"]),
    st.booleans(),
)
def test_any_chunking_of_any_lines_gives_the_same_items(
    lines: list[dict[str, Any]], cuts: list[int], newline: bytes, trailing: bool
) -> None:
    encoded = [json.dumps(line, ensure_ascii=False).encode() for line in lines]
    data = newline.join(encoded) + (newline if trailing else b"")
    cuts = [c for c in cuts if c <= len(data)]
    # A CRLF line's "\r" counts towards its size, when a newline follows it at all.
    followed = [True] * (len(lines) - 1) + [trailing] if lines else []
    expected: list[Any] = [
        line if len(raw) + (newline == b"\r\n" and nl) <= MAX_ITEM else ("oversized", line["index"])
        for line, raw, nl in zip(lines, encoded, followed, strict=True)
    ]

    def shape(value: Any) -> Any:
        return ("oversized", value.index) if isinstance(value, OversizedItem) else value

    assert [shape(v) for v in parse(data, cuts)] == expected
    assert [shape(v) for v in parse(data, [])] == expected


@settings(max_examples=300, deadline=None)
@given(st.decimals(0, 10**7, places=3, allow_nan=False), st.sampled_from(sorted(_UNITS)))
def test_a_duration_with_a_unit_is_its_number_times_the_unit(amount: Any, unit: str) -> None:
    seconds = float(amount) * _UNITS[unit]
    text = f"{amount:f}{unit}"
    if seconds > MAX_DURATION.total_seconds():
        try:
            parse_duration(text)
        except ValueError:
            return
        raise AssertionError(f"{text} is longer than the maximum and was accepted")
    assert abs(parse_duration(text) - timedelta(seconds=seconds)) <= timedelta(microseconds=1)


@given(st.one_of(st.text(max_size=20), st.floats(), st.integers(), st.booleans()))
def test_a_duration_is_a_bounded_timedelta_or_a_value_error(value: Any) -> None:
    try:
        parsed = parse_duration(value)
    except ValueError:
        return
    assert timedelta(0) <= parsed <= MAX_DURATION
