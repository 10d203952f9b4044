"""The burst buffer's errors."""

from __future__ import annotations

from sluice.errors import ServiceUnavailable


class ClaimTimedOut(ServiceUnavailable):
    """Another trigger with the same idempotency key held its claim past the wait; retry."""

    code = "idempotency_claim_timeout"


class AcceptContention(ServiceUnavailable):
    """An accept kept finding the idempotency binding changed by concurrent triggers; retry."""

    code = "idempotency_contention"


class MalformedEntry(Exception):
    """A buffer entry or its snapshot does not parse: replaying it can never succeed."""
