"""Domain errors: what went wrong, in the engine's words. No HTTP status here.

The one table that turns these into status codes and `error_type`s is `ml_api.api.errors`; the engine,
batching, models and registry raise these and never think about HTTP. The message is shown to the client
as is, so it says what to change.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a caller can act on; `message` is the reason shown to the client."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(DomainError):
    """The request is well-formed JSON but asks for something impossible (empty batch, too many dimensions)."""


class InputTooLong(DomainError):
    """An input is over the model's maximum length and the client asked not to truncate it."""


class BatchTooLarge(DomainError):
    """More items in one request than MAX_CLIENT_BATCH_SIZE: the client must split it."""


class Overloaded(DomainError):
    """MAX_CONCURRENT_REQUESTS are in flight: refused now rather than queued without bound.

    `retry_after_s` is the engine's estimate of when the queue will have drained (None: no estimate).
    """

    def __init__(self, message: str = "model is overloaded, retry later", retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class InferenceFailed(DomainError):
    """A forward pass failed; `out_of_memory` tells the edge it is worth retrying (smaller, or later)."""

    def __init__(self, message: str, *, out_of_memory: bool = False) -> None:
        super().__init__(message)
        self.out_of_memory = out_of_memory


class Unhealthy(DomainError):
    """The models are not loaded, or a health forward pass failed or timed out."""


class ClientGone(DomainError):
    """The client closed the connection; its queued items were dropped before inference."""

    def __init__(self, message: str = "client closed the request") -> None:
        super().__init__(message)


class ModelError(DomainError):
    """A model directory is missing, incomplete or unloadable; the message says which and how to fix it."""


class DeviceUnavailable(DomainError):
    """DEVICE=cuda was asked for but no runtime sees a usable GPU (or one fell back to CPU)."""


class Unsupported(DomainError):
    """The loaded model cannot do what the route asks (e.g. /embed_all on a graph without token outputs)."""


class NotFound(DomainError):
    """The client named something this server does not have (a model id)."""
