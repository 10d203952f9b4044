"""The batch API's errors; each maps to its HTTP status through ``sluice.errors``."""

from __future__ import annotations

from typing import Any

from sluice.errors import BadRequest, Conflict, NotFound, PayloadTooLarge, TooManyRequests, Unprocessable


class InvalidNdjson(BadRequest):
    """A phase-2 body line that is not UTF-8 or not JSON (400, naming the line)."""

    code = "invalid_ndjson"

    def __init__(self, message: str, *, line: int) -> None:
        super().__init__(message, issues=[{"line": line, "message": message}])
        self.line = line


class UnindexedItemTooLarge(PayloadTooLarge):
    """A line over the item limit whose first bytes do not name its index (413, naming the line).

    Without its index the line cannot become the FAILED run an oversized item otherwise gets, and
    guessing one would put that run on another item's index.
    """

    code = "batch_item_too_large"

    def __init__(self, message: str, *, line: int) -> None:
        super().__init__(message, issues=[{"line": line, "message": message}])
        self.line = line


class InvalidItem(Unprocessable):
    """A well-formed line that is not a valid item of this batch (422, naming the index)."""

    code = "invalid_batch_item"

    def __init__(
        self, message: str, *, index: int | None, issues: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message, issues=issues)
        self.index = index


class BatchNotFound(NotFound):
    code = "batch_not_found"


class BatchNotPending(Conflict):
    """Items for a batch that can no longer take them (ABORTED): the client must make a new batch."""

    code = "batch_not_pending"


class BatchRateLimited(TooManyRequests):
    code = "batch_rate_limited"
