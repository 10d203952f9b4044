"""The chat runtime's errors."""

from __future__ import annotations


class MalformedSegment(Exception):
    """An ``out`` segment that cannot be reduced to a message (a chunk that does not parse, or one
    that refers to a part the segment never started). Recovery skips the segment; a live turn
    whose ``run`` yields such a chunk fails like any other exception in ``run``."""
