"""Domain errors: what went wrong, in the domain's words. No HTTP status here.

The one table that maps these (and the store's, cache's and upstream's errors) to HTTP lives in
`rag_backend.api.errors`; domain modules raise these and never think about status codes.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a caller can act on; `message` is the reason shown to the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(DomainError):
    """The request itself is wrong (bad name, bad filter, empty file)."""


class NotFound(DomainError):
    """The document or collection does not exist (or is being deleted)."""


class Conflict(DomainError):
    """The request clashes with existing state (collection exists, embedding model differs)."""


class TooLarge(DomainError):
    """An upload or a request is over a configured limit."""


class UnsupportedFormat(DomainError):
    """A file type or media type we do not read."""


class UpstreamUnavailable(DomainError):
    """ml-api, the embeddings API or the store cannot be reached now: the client may retry later.

    `retry_after` carries the upstream's own estimate (its Retry-After, e.g. ml-api's queue drain time) when it
    gave one, so our answer passes it on instead of guessing.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UpstreamError(DomainError):
    """An upstream answered, but with something we cannot use (a refusal, a malformed body)."""


class DeadlineExceeded(DomainError):
    """A request ran out of its time budget (a query's QUERY_TIMEOUT_S); its outstanding upstream calls were
    cancelled rather than left queued, so the message says which stage was cut short."""
