"""A byte-level NDJSON parser with the reference platform's semantics (spec §2.4).

Bytes go in, parsed lines and oversized markers come out. A line's size is checked before it is
decoded, and a line over ``max_item_bytes`` never sits in memory whole: once the unfinished line
in the buffer passes the limit, a marker is emitted from its first bytes, the buffer is dropped and
the rest of the line is skipped as it arrives. Peak memory is therefore about ``max_item_bytes``
plus one chunk, whatever the input.

Every emitted value carries the parser's state just after it (``resume``): the byte offset where
the next line starts, the line and emit counters, and whether the rest of an oversized line is
still to be skipped. A staged ingest that stops early starts a new parser from that state at that
offset of the object and continues exactly where it left off.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sluice import strict_json
from sluice.batches.errors import InvalidItem, InvalidNdjson, UnindexedItemTooLarge

NEWLINE = 0x0A
# The reference scans this much of an oversized line for its index and task.
EXTRACT_SCAN_BYTES = 512


@dataclass(frozen=True)
class ParserState:
    offset: int = 0
    line: int = 0
    emitted: int = 0
    skip_until_newline: bool = False


@dataclass(frozen=True)
class OversizedItem:
    """A line over the item limit whose first bytes name its ``index`` (a line that does not is
    rejected: see ``UnindexedItemTooLarge``)."""

    index: int
    task: str
    actual_size: int
    max_size: int


@dataclass(frozen=True)
class Parsed:
    value: Any  # the decoded JSON value, or an OversizedItem
    line: int
    resume: ParserState


class NdjsonParser:
    def __init__(self, max_item_bytes: int, start: ParserState | None = None) -> None:
        state = start or ParserState()
        self.max_item_bytes = max_item_bytes
        self._buffer = bytearray()
        # Absolute offset of the buffer's first byte, and how far it is known to hold no newline
        # (so a long line arriving in small chunks is scanned once, not once per chunk).
        self._base = state.offset
        self._scanned = 0
        self._line = state.line
        self._emitted = state.emitted
        self._skip = state.skip_until_newline

    def state(self) -> ParserState:
        return ParserState(self._base, self._line, self._emitted, self._skip)

    def feed(self, chunk: bytes) -> Iterator[Parsed]:
        if self._skip:
            nl = chunk.find(b"\n")
            if nl < 0:
                self._base += len(chunk)
                return
            self._skip = False
            self._line += 1
            self._base += nl + 1
            chunk = chunk[nl + 1 :]
        self._buffer += chunk
        while (nl := self._buffer.find(b"\n", self._scanned)) >= 0:
            line = bytes(self._buffer[:nl])
            del self._buffer[: nl + 1]
            self._base += nl + 1
            self._scanned = 0
            yield from self._complete_line(line)
        self._scanned = len(self._buffer)
        if len(self._buffer) > self.max_item_bytes:
            # An unfinished line already over the limit: mark it now and drop what was buffered,
            # rather than hold the whole line until its newline arrives.
            size = len(self._buffer)
            head = bytes(self._buffer[:EXTRACT_SCAN_BYTES])
            self._base += size
            self._buffer.clear()
            self._scanned = 0
            self._skip = True
            yield self._marker(head, size, self._line + 1)

    def finish(self) -> Iterator[Parsed]:
        """Parse what is left after the last chunk: a final line needs no trailing newline."""
        if not self._buffer:
            return
        line = bytes(self._buffer)
        self._base += len(line)
        self._buffer.clear()
        self._scanned = 0
        yield from self._complete_line(line)

    def _complete_line(self, line: bytes) -> Iterator[Parsed]:
        self._line += 1
        if len(line) > self.max_item_bytes:
            yield self._marker(line[:EXTRACT_SCAN_BYTES], len(line), self._line)
            return
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidNdjson(f"Invalid UTF-8 at line {self._line}: {exc}", line=self._line) from exc
        if not text.strip():
            return
        try:
            value = strict_json.loads(text)
        except strict_json.TooDeep as exc:
            # Valid JSON, only too deep to decode: an invalid item, named by its index if it can be.
            index, _ = extract_index_and_task(line)
            where = f"index {index}" if index >= 0 else f"unknown index (line {self._line})"
            raise InvalidItem(f"Invalid item at {where}: {exc}", index=index if index >= 0 else None) from exc
        except ValueError as exc:
            raise InvalidNdjson(f"Invalid JSON at line {self._line}: {exc}", line=self._line) from exc
        self._emitted += 1
        yield Parsed(value, self._line, self.state())

    def _marker(self, head: bytes, size: int, line: int) -> Parsed:
        index, task = extract_index_and_task(head)
        if index < 0:
            # The index may come after the payload, beyond the bytes kept: rejecting the line is
            # exact, where the emit position would be some other item's index.
            raise UnindexedItemTooLarge(
                f"Item at line {line} is larger than {self.max_item_bytes} bytes and its first "
                f'{EXTRACT_SCAN_BYTES} bytes do not name its index; put "index" first in the item',
                line=line,
            )
        marker = OversizedItem(index=index, task=task, actual_size=size, max_size=self.max_item_bytes)
        self._emitted += 1
        return Parsed(marker, line, self.state())


def extract_index_and_task(data: bytes) -> tuple[int, str]:
    """The top-level ``index`` and ``task`` of a JSON object's first bytes, read without decoding
    the (possibly truncated) whole: ``(-1, "unknown")`` for whatever cannot be found."""
    data = data[:EXTRACT_SCAN_BYTES]
    index, task = -1, "unknown"
    depth = 0
    i, n = 0, len(data)
    while i < n:
        byte = data[i]
        if byte in b"{[":
            depth += 1
        elif byte in b"}]":
            depth -= 1
        elif byte == 0x22:  # a string: a key when at depth 1 and followed by ':'
            end = _string_end(data, i + 1)
            if end < 0:
                break
            key = data[i + 1 : end]
            j = _skip_blanks(data, end + 1)
            if depth == 1 and j < n and data[j] == 0x3A:
                j = _skip_blanks(data, j + 1)
                if key == b"index" and index < 0:
                    k = j
                    while k < n and 0x30 <= data[k] <= 0x39:
                        k += 1
                    if k > j:
                        index = int(data[j:k])
                elif key == b"task" and task == "unknown" and j < n and data[j] == 0x22:
                    value_end = _string_end(data, j + 1)
                    if value_end > 0:
                        with contextlib.suppress(ValueError):
                            task = json.loads(data[j : value_end + 1].decode("utf-8"))
                        i = value_end + 1
                        continue
            i = end + 1
            continue
        i += 1
    return index, task


def _string_end(data: bytes, start: int) -> int:
    """Index of the quote closing a string that starts at ``start``, stepping over escapes."""
    i = start
    while i < len(data):
        if data[i] == 0x5C:
            i += 2
            continue
        if data[i] == 0x22:
            return i
        i += 1
    return -1


def _skip_blanks(data: bytes, i: int) -> int:
    while i < len(data) and data[i] in b" \t\r\n":
        i += 1
    return i
