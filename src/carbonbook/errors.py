"""carbonbook's exceptions. Bad input is never an exception: it is a ``rejected`` event."""

from __future__ import annotations


class CarbonbookError(Exception):
    """Root of carbonbook's exceptions."""


class BookIntegrityError(CarbonbookError, AssertionError):
    """Raised when a book invariant is broken: the book can no longer be trusted."""
