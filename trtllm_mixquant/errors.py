"""Domain errors: what can go wrong with a request, whatever protocol carried it.

The engines, the orchestrator and the frontend raise these; each server maps them once to its own
protocol (`server.errors` to HTTP status codes and OpenAI error bodies, the Triton model to Triton
errors). Messages say what was wrong and how to fix it, without internal names or paths.
"""

from __future__ import annotations


class ServingError(Exception):
    """Base class; `param` names the request field at fault, when there is one."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.message, self.param = message, param


class InvalidRequest(ServingError, ValueError):
    """The request cannot be served as sent (HTTP 400)."""


class Overloaded(ServingError):
    """Too many requests in flight; retry later (HTTP 429)."""


class Unavailable(ServingError):
    """Not ready, shutting down, or no live worker of a role (HTTP 503, with Retry-After)."""

    def __init__(self, message: str, retry_after: float = 1.0):
        super().__init__(message)
        self.retry_after = retry_after


class RequestFailed(ServingError):
    """The request was accepted and then failed (a worker died, a KV transfer failed) (HTTP 500)."""
