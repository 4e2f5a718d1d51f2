"""The errors the serving layer raises on purpose, each with the HTTP status the API answers with.

``str(err)`` is the one-line reason the API puts in ``{"error": ...}``; the command line shows the
same line. Deriving from :class:`~streamdeq.errors.StreamDEQError` keeps the CLI's one-line
handling for free.
"""

from __future__ import annotations

from ..errors import StreamDEQError


class ServiceError(StreamDEQError):
    """A request the service cannot honour; ``status`` is the HTTP status that says why."""

    status: int = 400


class NotFoundError(ServiceError, KeyError):
    """An unknown stream id."""

    status = 404

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ConflictError(ServiceError):
    """A stream id that already exists."""

    status = 409


class LimitError(ServiceError):
    """``--max-streams`` reached."""

    status = 409


class SourceRejectedError(ServiceError, ValueError):
    """A source the source policy does not allow (outside the media root, a forbidden scheme or
    host)."""

    status = 400


class SubscriptionClosed(StreamDEQError):
    """A subscription read after the service stopped or the subscription was closed."""
