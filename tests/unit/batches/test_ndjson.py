"""The NDJSON parser and extract_index_and_task: the reference's test list (spec §2.11)."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Iterable
from typing import Any

import pytest

from sluice.batches.errors import InvalidNdjson, UnindexedItemTooLarge
from sluice.batches.ndjson import NdjsonParser, OversizedItem, Parsed, ParserState, extract_index_and_task


def parse(chunks: Iterable[bytes], max_item_bytes: int = 1024) -> list[Parsed]:
    parser = NdjsonParser(max_item_bytes)
    out: list[Parsed] = []
    for chunk in chunks:
        out.extend(parser.feed(chunk))
    out.extend(parser.finish())
    return out


def values(chunks: Iterable[bytes], max_item_bytes: int = 1024) -> list[Any]:
    return [p.value for p in parse(chunks, max_item_bytes)]


def test_should_parse_basic_ndjson_correctly() -> None:
    assert values([b'{"a":1}\n{"b":2}\n']) == [{"a": 1}, {"b": 2}]


def test_should_handle_ndjson_without_trailing_newline() -> None:
    assert values([b'{"a":1}\n{"b":2}']) == [{"a": 1}, {"b": 2}]


def test_should_handle_escaped_newlines_in_json_string_values() -> None:
    assert values([b'{"text":"line1\\nline2"}\n']) == [{"text": "line1\nline2"}]


def test_should_skip_empty_lines() -> None:
    parsed = parse([b'{"a":1}\n\n   \n{"b":2}\n'])
    assert [p.value for p in parsed] == [{"a": 1}, {"b": 2}]
    assert [p.line for p in parsed] == [1, 4]


def test_should_handle_chunks_split_mid_line() -> None:
    assert values([b'{"a":', b'1}\n{"b"', b":2}\n"]) == [{"a": 1}, {"b": 2}]


def test_should_handle_multibyte_utf8_characters_split_across_chunks() -> None:
    data = '{"emoji":"😀"}\n'.encode()
    split = data.index(b"\xf0") + 2
    assert values([data[:split], data[split:]]) == [{"emoji": "😀"}]


def test_should_handle_multiple_multibyte_characters_across_chunks() -> None:
    data = '{"text":"日本語テキスト","e":"🎉🎊"}\n'.encode()
    assert values([data[i : i + 1] for i in range(len(data))]) == [{"text": "日本語テキスト", "e": "🎉🎊"}]


def test_should_emit_oversized_item_marker_for_lines_exceeding_max_item_bytes() -> None:
    big = json.dumps({"index": 3, "task": "t", "payload": "x" * 200}).encode()
    (marker,) = values([big + b"\n"], max_item_bytes=100)
    assert marker == OversizedItem(index=3, task="t", actual_size=len(big), max_size=100)


def test_should_emit_oversized_item_marker_for_unbounded_accumulation_without_newlines() -> None:
    chunks = [b'{"index":5,"task":"t","payload":"'] + [b"x" * 50] * 10
    (marker,) = values(chunks, max_item_bytes=100)
    assert isinstance(marker, OversizedItem) and marker.index == 5 and marker.actual_size > 100


def test_should_skip_remaining_bytes_of_oversized_line_arriving_in_subsequent_chunks() -> None:
    chunks = [b'{"index":0,"task":"t","p":"' + b"x" * 150, b"x" * 500, b'"}\n{"index":1}\n']
    parsed = values(chunks, max_item_bytes=100)
    assert isinstance(parsed[0], OversizedItem) and parsed[0].index == 0
    assert parsed[1:] == [{"index": 1}]


def test_rejects_an_oversized_line_whose_index_is_past_the_scan_window() -> None:
    # Its emit position would be another item's index: the line is refused, naming its line.
    unnamed = json.dumps({"payload": "x" * 200, "index": 9}).encode()
    data = b'{"index":0}\n{"index":1}\n' + (b" " * 600) + unnamed + b'\n{"index":3}\n'
    parser = NdjsonParser(100)
    emitted = []
    with pytest.raises(UnindexedItemTooLarge) as caught:
        emitted.extend(p.value for p in parser.feed(data))
    assert emitted == [{"index": 0}, {"index": 1}]
    assert caught.value.line == 3 and caught.value.status == 413


def test_should_check_byte_size_before_decoding_to_prevent_oom() -> None:
    # Invalid UTF-8 in a line over the limit is never decoded: it becomes a marker, not an error.
    line = b'{"index":1,"task":"t","p":"' + b"\xff" * 200 + b'"}\n'
    (marker,) = values([line], max_item_bytes=100)
    assert isinstance(marker, OversizedItem) and marker.index == 1


def test_should_handle_final_line_in_flush_without_trailing_newline() -> None:
    parser = NdjsonParser(1024)
    assert list(parser.feed(b'{"a":1}')) == []
    assert [p.value for p in parser.finish()] == [{"a": 1}]


def test_should_reject_invalid_json() -> None:
    with pytest.raises(InvalidNdjson, match="Invalid JSON at line 2") as err:
        values([b'{"a":1}\n{not json}\n'])
    assert err.value.status == 400 and err.value.line == 2


def test_should_reject_invalid_utf8_sequences() -> None:
    with pytest.raises(InvalidNdjson, match="Invalid UTF-8 at line 1"):
        values([b'{"a":"\xff\xfe"}\n'])


def test_should_handle_many_small_chunks_efficiently() -> None:
    data = b"".join(json.dumps({"index": i}).encode() + b"\n" for i in range(500))
    assert values([data[i : i + 3] for i in range(0, len(data), 3)]) == [{"index": i} for i in range(500)]


def test_should_handle_multiple_lines_per_chunk() -> None:
    assert values([b'{"a":1}\n{"a":2}\n{"a":3}\n']) == [{"a": 1}, {"a": 2}, {"a": 3}]


def test_should_handle_empty_stream() -> None:
    assert values([]) == [] and values([b""]) == []


def test_should_pass_normal_items_and_emit_markers_for_oversized_items_in_the_same_stream() -> None:
    big = json.dumps({"index": 1, "task": "big", "payload": "x" * 300}).encode()
    parsed = values([b'{"index":0}\n' + big + b'\n{"index":2}\n'], max_item_bytes=100)
    assert parsed[0] == {"index": 0} and parsed[2] == {"index": 2}
    assert parsed[1] == OversizedItem(index=1, task="big", actual_size=len(big), max_size=100)


def test_should_handle_stream_with_only_whitespace() -> None:
    assert values([b"  \n\t\n \r\n"]) == []


def test_rejects_non_standard_json_constants() -> None:
    with pytest.raises(InvalidNdjson):
        values([b'{"a":NaN}\n'])


def test_oversized_line_is_never_buffered_whole() -> None:
    limit = 64 * 1024
    parser = NdjsonParser(limit)
    tracemalloc.start()
    try:
        list(parser.feed(b'{"index":7,"task":"t","payload":"'))
        for _ in range(200):  # a 12.8 MB line in 64 KiB chunks
            list(parser.feed(b"x" * limit))
        list(parser.feed(b'"}\n'))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * limit


def test_resume_state_restarts_mid_object_exactly() -> None:
    data = b'{"index":0}\n{"index":1,"p":"' + b"x" * 300 + b'"}\n{"index":2}\n{"index":3}'
    first = list(NdjsonParser(100).feed(data[:150]))  # item 0, then item 1 cut off as oversized
    assert isinstance(first[-1].value, OversizedItem)
    resume = first[-1].resume
    assert resume.skip_until_newline and resume.emitted == 2
    parser = NdjsonParser(100, resume)
    rest = [p.value for p in parser.feed(data[resume.offset :])] + [p.value for p in parser.finish()]
    assert rest == [{"index": 2}, {"index": 3}]
    assert ParserState(len(data), 4, 4, False) == parser.state()


def test_should_extract_index_and_task_from_json_bytes() -> None:
    assert extract_index_and_task(b'{"index": 42, "task": "my-task", "payload": "xx') == (42, "my-task")


def test_should_return_defaults_for_empty_or_malformed_bytes() -> None:
    assert extract_index_and_task(b"") == (-1, "unknown")
    assert extract_index_and_task(b"not json at all") == (-1, "unknown")
    assert extract_index_and_task(b'{"index": "x"}') == (-1, "unknown")


def test_should_handle_keys_in_any_order() -> None:
    assert extract_index_and_task(b'{"task":"t\\"q","payload":{},"index":\t7}') == (7, 't"q')


def test_should_not_match_nested_keys() -> None:
    data = b'{"payload":{"index":1,"task":"inner"},"options":[{"index":2}]}'
    assert extract_index_and_task(data) == (-1, "unknown")
